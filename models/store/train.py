"""Train the store's product detector on rendered scenes, products composed onto real photos and real
negatives, and export it to ONNX.

    pip install -e ".[dev]"                       # ultralytics + torch/torchvision (see docs/store.md)
    python -m models.store.real_scenes --out data/real_scenes
    python -m models.store.train --model configs/store-yolo11p.yaml --out data/detector

The data set (YOLO format) mixes three kinds of training pictures: products on drawn cluttered
backgrounds, products composed onto the real-scene corpus's training photos (scale, rotation, light,
blur, occlusion by hands), and training photos with nothing labeled, so real texture is learned as
background; unlabeled surfaces printed like a product but without its outline (look-alikes) lie under
the products. A YOLO built from its yaml (no pretrained download) or fine-tuned from a .pt is trained,
then crops of training photos it still sees products in (hard negatives) join the training pictures for
a few more epochs. The model's .json keeps where each hard negative was cut: fine-tuning that model
later (here or in an enrollment) trains on them again instead of unlearning them. Exported to ONNX with
a dynamic batch axis and evaluated through the served ONNX path (models.store.eval). Writes
`<out>/store_detector.{onnx,pt,json}`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models.store.real_scenes import pictures
from models.store.render import CATALOGUE, Product, SquareCrop, catalogue_looks, render_scene

ONNX_NAME = "store_detector.onnx"
WEIGHTS_NAME = "store_detector.pt"
META_NAME = "store_detector.json"
HARD_NEGATIVES = "hard_negatives"  # in a model's .json: the crops of corpus photos it was taught are no product

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
CLASS_SLOTS = 16  # outputs the detector is built with: products taught later keep every trained weight


@dataclass(frozen=True)
class TrainingPlan:
    """How many pictures of each kind, and how long to train."""

    rendered: int = 500  # products on drawn backgrounds
    composites: int = 1000  # products on real training photos
    negatives: int = 400  # real training photos, nothing labeled
    val: int = 200  # composites + rendered, from training photos
    test: int = 200  # per test set: rendered; composed onto held-out photos
    epochs: int = 30
    imgsz: int = 320
    batch: int = 32
    look_alikes: int = 2  # up to this many surfaces printed like a product, without its outline, per training scene
    hard_negatives: int = 400  # then crops of training photos the trained model sees products in ...
    hard_epochs: int = 8  # ... join the training pictures for this many more epochs
    replay: int = 100_000  # of the base model's kept hard negatives, replay at most this many (a random sample)
    freeze: int = 0  # the network's first layers kept as the base model has them (11: the whole backbone)


def catalogue_classes(path: Path = CATALOGUE) -> dict[int, str]:
    """yolo_class_id -> sku of the catalogue seed."""
    return {p["yolo_class_id"]: p["sku"] for p in json.loads(Path(path).read_text())["products"]}


class PhotoPool:
    """RGB photos read on first use and kept (the corpus is a few hundred pictures)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        self._cache: dict[int, np.ndarray] = {}

    def pick(self, rng: np.random.Generator) -> np.ndarray:
        """A random photo (RGB)."""
        return self.pick_named(rng)[1]

    def pick_named(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """A random photo and its name in the corpus (`<split>/<file>`)."""
        i = int(rng.integers(len(self.paths)))
        if i not in self._cache:
            self._cache[i] = cv2.cvtColor(cv2.imread(str(self.paths[i])), cv2.COLOR_BGR2RGB)
        return f"{self.paths[i].parent.name}/{self.paths[i].name}", self._cache[i]


def _split_folders(root: Path, split: str) -> None:
    """root/images/<split> and root/labels/<split>, even for an empty split (ultralytics wants each it is given)."""
    for kind in ("images", "labels"):
        (root / kind / split).mkdir(parents=True, exist_ok=True)


def _write_image(root: Path, split: str, name: str, image: np.ndarray, labels, imgsz: int, quality: int) -> None:
    cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, quality])
    lines = [
        f"{c} {(x0 + x1) / 2 / imgsz:.6f} {(y0 + y1) / 2 / imgsz:.6f} {(x1 - x0) / imgsz:.6f} {(y1 - y0) / imgsz:.6f}"
        for c, (x0, y0, x1, y1) in labels
    ]
    (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines))


def write_split(root: Path, split: str, products: Mapping[int, Product], photos: PhotoPool | None, seed: int,
                imgsz: int, rendered: int = 0, composites: int = 0, negatives: int = 0, look_alikes: int = 0) -> None:
    """Render one split into root/images/<split> and root/labels/<split> (YOLO txt labels); each scene gets
    0 to `look_alikes` product-printed surfaces (models.store.render.render_scene)."""
    rng = np.random.default_rng(seed)
    _split_folders(root, split)
    kinds = ["rendered"] * rendered + ["composite"] * composites + ["negative"] * negatives
    for i, kind in enumerate(tqdm(kinds, desc=f"render {split}", unit="img", leave=False)):
        surfaces = int(rng.integers(0, look_alikes + 1)) if look_alikes else 0
        if kind == "rendered":
            image, labels = render_scene(rng, products, size=imgsz, look_alikes=surfaces)
        elif kind == "composite":
            classes = list(rng.choice(list(products), size=int(rng.integers(1, 4)), replace=True))
            image, labels = render_scene(rng, products, size=imgsz, classes=classes, background=photos.pick(rng),
                                         look_alikes=surfaces)
        else:
            image, labels = render_scene(rng, products, size=imgsz, classes=[], distractors=0,
                                         background=photos.pick(rng), look_alikes=surfaces)
        _write_image(root, split, f"{kind}-{i:05d}", image, labels, imgsz, int(rng.integers(60, 95)))


def slot_names(names: Mapping[int, str]) -> dict[int, str]:
    """The data set's class names: the products, and CLASS_SLOTS outputs at least (spare ones unused), so
    teaching a product later fine-tunes the same network instead of a new output layer."""
    return {i: names.get(i, f"unused-{i}") for i in range(max(CLASS_SLOTS, max(names) + 1))}


def write_dataset(root: Path, products: Mapping[int, Product], names: Mapping[int, str], corpus: Path,
                  plan: TrainingPlan, seed: int = 0, test_products: Mapping[int, Product] | None = None) -> Path:
    """The whole YOLO data set under root; returns its data.yaml. Held-out photos only reach `test_composite`;
    `test_products` (default: `products`) are what the two test splits show."""
    shutil.rmtree(root, ignore_errors=True)
    train_photos, held_out = pictures(corpus, "train"), pictures(corpus, "heldout")
    if not train_photos or not held_out:
        raise FileNotFoundError(f"no real-scene corpus in {corpus}: build it with `python -m models.store.real_scenes`")
    pool = PhotoPool(train_photos)
    third = plan.val // 3
    write_split(root, "train", products, pool, seed, plan.imgsz, plan.rendered, plan.composites, plan.negatives,
                plan.look_alikes)
    write_split(root, "val", products, pool, seed + 1, plan.imgsz, third, plan.val - 2 * third, third, plan.look_alikes)
    test_products = products if test_products is None else test_products
    write_split(root, "test_rendered", test_products, None, seed + 2, plan.imgsz, rendered=plan.test)
    write_split(root, "test_composite", test_products, PhotoPool(held_out), seed + 3, plan.imgsz, composites=plan.test)
    data_yaml = root / "data.yaml"
    data_yaml.write_text(json.dumps({"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                                     "names": slot_names(names)}))
    return data_yaml


def mine_hard_negatives(root: Path, onnx: Path, photos: PhotoPool, count: int, imgsz: int, conf: float,
                        seed: int) -> list[dict]:
    """Add to the training split up to `count` random crops of training photos (cut as training crops
    them) in which the detector at `onnx` sees a product at score >= `conf`: the real texture it still
    mistakes for packaging. Returns where each was cut ({"picture", **SquareCrop}), for replay_hard_negatives."""
    from models.store.detector import ProductDetector

    detector = ProductDetector(onnx, conf=conf, prefer_gpu=False)
    _split_folders(root, "train")
    rng = np.random.default_rng(seed)
    found: list[dict] = []
    for _ in tqdm(range(count * 20), desc="hard negatives", unit="crop", leave=False):
        if len(found) == count:
            break
        picture, photo = photos.pick_named(rng)
        crop = SquareCrop.random(rng, photo.shape)
        image = crop.cut(photo, imgsz).astype(np.uint8)
        if detector.detect([cv2.cvtColor(image, cv2.COLOR_RGB2BGR)])[0]:
            _write_image(root, "train", f"hard-{len(found):05d}", image, [], imgsz, 90)
            found.append({"picture": picture, **asdict(crop)})
    return found


def kept_hard_negatives(meta: Mapping) -> list[dict]:
    """The hard negatives a model was taught (its .json / version description), for replay."""
    return list(meta.get(HARD_NEGATIVES, []))


def replay_hard_negatives(root: Path, corpus: Path, crops: Sequence[Mapping], imgsz: int,
                          sample: int | None = None) -> int:
    """Cut the hard negatives an earlier model was taught (mine_hard_negatives' records; at most `sample`
    of them, a random choice) from the corpus again into the training split, so fine-tuning does not
    unlearn them. Returns how many were written (a corpus from other package versions may lack pictures)."""
    if sample is not None and sample < len(crops):
        crops = [crops[i] for i in sorted(np.random.default_rng(0).choice(len(crops), sample, replace=False))]
    _split_folders(root, "train")
    photos: dict[str, np.ndarray | None] = {}
    written = 0
    for i, crop in enumerate(tqdm(crops, desc="replay hard negatives", unit="crop", leave=False)):
        if crop["picture"] not in photos:
            image = cv2.imread(str(corpus / crop["picture"]))
            photos[crop["picture"]] = None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        photo = photos[crop["picture"]]
        if photo is None:
            continue
        square = SquareCrop(int(crop["x"]), int(crop["y"]), int(crop["side"]), bool(crop["mirrored"]))
        _write_image(root, "train", f"kept-{i:05d}", square.cut(photo, imgsz).astype(np.uint8), [], imgsz, 90)
        written += 1
    return written


def train(data_yaml: Path, base: str, plan: TrainingPlan, work: Path, progress: Progress, seed: int = 0,
          run: str = "train") -> Path:
    """Train (from a model yaml) or fine-tune (from a .pt) with ultralytics; returns the best weights."""
    try:
        from ultralytics import YOLO  # training-only dependency
    except ImportError as exc:
        raise RuntimeError("training the detector needs the `train` extra: pip install -e '.[train]'") from exc

    model = YOLO(base)
    model.add_callback("on_fit_epoch_end",
                       lambda trainer: progress(min(1.0, (trainer.epoch + 1) / trainer.epochs),
                                                f"epoch {trainer.epoch + 1}/{trainer.epochs}"))
    model.train(data=str(data_yaml), imgsz=plan.imgsz, epochs=plan.epochs, batch=plan.batch, device="cpu",
                workers=2, pretrained=base.endswith(".pt"), amp=False, plots=False, project=str(work.resolve()),
                name=run, exist_ok=True, seed=seed, deterministic=False, fliplr=0.0, verbose=False,
                freeze=plan.freeze or None)
    return Path(model.trainer.best)


def export(weights: Path, imgsz: int, names: Mapping[int, str], out: Path) -> Path:
    """Export trained weights to ONNX (dynamic batch) as out/store_detector.onnx, with the .pt and the
    .json (classes, image size: what ProductDetector reads) beside it. The export runs on a copy in
    `out` (ultralytics writes the ONNX beside the weights it reads: never beside the source's)."""
    from ultralytics import YOLO

    out.mkdir(parents=True, exist_ok=True)
    staged = out / WEIGHTS_NAME
    if staged.resolve() != Path(weights).resolve():
        shutil.copy(weights, staged)
    exported = Path(YOLO(str(staged)).export(format="onnx", imgsz=imgsz, dynamic=True, opset=17))  # out/ONNX_NAME
    (out / META_NAME).write_text(json.dumps({"classes": {str(c): n for c, n in names.items()}, "imgsz": imgsz}))
    return exported


def main() -> None:
    from models.store.eval import evaluate

    parser = argparse.ArgumentParser(description="Train and export the store's product detector.")
    defaults = TrainingPlan()
    for field, value in asdict(defaults).items():
        parser.add_argument(f"--{field}", type=int, default=value)
    parser.add_argument("--model", default="configs/store-yolo11p.yaml", help="model yaml (from scratch) or .pt")
    parser.add_argument("--corpus", type=Path, default=Path("data/real_scenes"))
    parser.add_argument("--work", type=Path, default=Path("data/detector_work"))
    parser.add_argument("--out", type=Path, default=Path("data/detector"))
    parser.add_argument("--conf", type=float, default=0.4, help="the served score threshold (for the phantom rate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plan = replace(defaults, **{f: getattr(args, f) for f in asdict(defaults)})
    names = catalogue_classes()
    data_yaml = write_dataset(args.work / "dataset", catalogue_looks(), names, args.corpus, plan, args.seed)
    base_meta = Path(args.model).with_suffix(".json")  # fine-tuning a trained model: what it was taught stays
    kept = kept_hard_negatives(json.loads(base_meta.read_text())) if base_meta.exists() else []
    if kept:
        replayed = replay_hard_negatives(args.work / "dataset", args.corpus, kept, plan.imgsz, plan.replay)
        print(f"{replayed} of the base model's {len(kept)} hard negatives replayed")

    def stage(base: str, epochs: int, run: str) -> Path:
        with tqdm(total=epochs, desc=run, unit="epoch") as bar:
            return train(data_yaml, base, replace(plan, epochs=epochs), args.work,
                         lambda done, _: bar.update(round(done * epochs) - bar.n), args.seed, run)

    best = stage(args.model, plan.epochs, "train") if plan.epochs else Path(args.model)  # 0: args.model is trained
    mined: list[dict] = []
    if plan.hard_negatives and plan.hard_epochs:
        first = export(best, plan.imgsz, names, args.work / "first")
        mined = mine_hard_negatives(args.work / "dataset", first, PhotoPool(pictures(args.corpus, "train")),
                                    plan.hard_negatives, plan.imgsz, args.conf / 2, args.seed + 4)
        print(f"{len(mined)} hard negatives from the training photos")
        best = stage(str(args.work / "first" / WEIGHTS_NAME), plan.hard_epochs, "hard")
    onnx = export(best, plan.imgsz, names, args.out)
    metrics = evaluate(onnx, args.work / "dataset", args.corpus, names, args.conf)
    meta = {"classes": names, "imgsz": plan.imgsz, "model": args.model, "plan": asdict(plan), **metrics,
            HARD_NEGATIVES: kept + mined}
    (args.out / META_NAME).write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
