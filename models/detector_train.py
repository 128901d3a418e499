"""Train the store's product detector on synthetic scenes and export it to ONNX.

    pip install -e ".[yolo]"   # ultralytics + torch/torchvision (see docs/store.md)
    python -m models.detector_train --train 1500 --val 300 --epochs 40 --out data/detector

Renders a YOLO-format data set of catalogue products (models.store_render), trains an ultralytics YOLO
built from its yaml (no pretrained download), reports mAP50 and mAP50-95 on a held-out synthetic set
rendered with another seed, exports ONNX at --imgsz with a dynamic batch axis, and writes
`<out>/store_detector.onnx` + `<out>/store_detector.json` (classes, image size, metrics).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models.store_render import CATALOGUE, catalogue_looks, render_scene

ONNX_NAME = "store_detector.onnx"
META_NAME = "store_detector.json"


def write_split(root: Path, split: str, count: int, seed: int, imgsz: int) -> None:
    """Render `count` scenes into root/images/<split> and root/labels/<split> (YOLO txt labels)."""
    looks = catalogue_looks()
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(count), desc=f"render {split}", unit="img"):
        image, labels = render_scene(rng, looks, size=imgsz)
        cv2.imwrite(str(root / "images" / split / f"{i:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
        lines = [f"{c} {(x0 + x1) / 2 / imgsz:.6f} {(y0 + y1) / 2 / imgsz:.6f} {(x1 - x0) / imgsz:.6f} {(y1 - y0) / imgsz:.6f}"
                 for c, (x0, y0, x1, y1) in labels]
        (root / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines))


def main() -> None:
    from ultralytics import YOLO  # training-only dependency

    parser = argparse.ArgumentParser(description="Train and export the synthetic-catalogue product detector.")
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--model", default="yolo11n.yaml", help="ultralytics model yaml (built from scratch)")
    parser.add_argument("--work", type=Path, default=Path("data/detector_work"))
    parser.add_argument("--out", type=Path, default=Path("data/detector"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    products = json.loads(CATALOGUE.read_text())["products"]
    names = {p["yolo_class_id"]: p["sku"] for p in products}
    dataset = args.work / "dataset"
    shutil.rmtree(dataset, ignore_errors=True)
    write_split(dataset, "train", args.train, args.seed, args.imgsz)
    write_split(dataset, "val", args.val, args.seed + 1, args.imgsz)
    write_split(dataset, "test", args.test, args.seed + 2, args.imgsz)
    data_yaml = dataset / "data.yaml"
    data_yaml.write_text(json.dumps({"path": str(dataset.resolve()), "train": "images/train", "val": "images/val",
                                     "test": "images/test", "names": names}))

    model = YOLO(args.model)
    model.train(data=str(data_yaml), imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, device="cpu",
                workers=2, pretrained=False, amp=False, plots=False, project=str(args.work.resolve()), name="train",
                exist_ok=True, seed=args.seed, deterministic=False, fliplr=0.0, verbose=False)
    metrics = model.val(data=str(data_yaml), split="test", imgsz=args.imgsz, batch=args.batch, device="cpu", plots=False)
    exported = Path(model.export(format="onnx", imgsz=args.imgsz, dynamic=True, opset=17))
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(exported, args.out / ONNX_NAME)
    meta = {"classes": names, "imgsz": args.imgsz, "model": args.model, "epochs": args.epochs,
            "train_images": args.train, "test_images": args.test,
            "test_map50": round(float(metrics.box.map50), 4), "test_map50_95": round(float(metrics.box.map), 4)}
    (args.out / META_NAME).write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
