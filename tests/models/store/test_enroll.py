"""Product enrollment without the server: GrabCut cut-outs of real photos, the photo split, the quality gate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from models.store.cutout import cut_out
from models.store.enroll import GateLimits, gate, split_photos
from models.store.render import photo_background
from tests.support.paths import PROJECT_ROOT


def _cat_on_a_real_scene() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """scikit-image's cat, cut out by a hand-made mask, placed on the rocket photo: (BGR photo, true mask, box)."""
    cat = data.chelsea()  # RGB 300 x 451
    h, w = cat.shape[:2]
    truth_small = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth_small, (w // 2, h // 2), (w // 3, h // 3), 0, 0, 360, 1, -1)
    scene = photo_background(np.random.default_rng(3), data.rocket(), 640).astype(np.uint8)
    y, x = 150, 100
    truth = np.zeros(scene.shape[:2], np.uint8)
    truth[y:y + h, x:x + w] = truth_small
    scene[truth == 1] = cat[truth_small == 1]
    ys, xs = np.nonzero(truth)
    return cv2.cvtColor(scene, cv2.COLOR_RGB2BGR), truth, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_grabcut_cuts_the_object_out_of_a_real_scene_inside_the_admins_box():
    photo, truth, (x0, y0, x1, y1) = _cat_on_a_real_scene()
    margin = 25
    cutout = cut_out(photo, (x0 - margin, y0 - margin, x1 + margin, y1 + margin))
    mask = np.zeros(truth.shape, bool)
    bx0, by0, bx1, by1 = cutout.box
    mask[by0:by1, bx0:bx1] = cutout.sprite[:, :, 3] > 127
    iou = (mask & (truth == 1)).sum() / (mask | (truth == 1)).sum()
    assert iou > 0.85, iou
    assert cutout.warning is None
    assert abs(bx0 - x0) < margin and abs(by1 - y1) < margin  # the box shrinks to the object
    assert cutout.sprite.shape[2] == 4 and (cutout.sprite[:, :, 3] == 0).any()  # background is transparent


def test_without_a_box_the_product_in_the_middle_of_a_photo_is_found():
    cutout = cut_out(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))  # a cup on a saucer on a table
    h, w = data.coffee().shape[:2]
    x0, y0, x1, y1 = cutout.box
    assert 0.2 < cutout.coverage < 0.95 and cutout.warning is None
    assert x0 > 0.05 * w and x1 < 0.95 * w and (x1 - x0) * (y1 - y0) < 0.8 * w * h  # not the whole photo


def test_a_box_too_small_is_an_error_and_a_flat_box_a_warning():
    photo = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    with pytest.raises(ValueError, match="16 x 16"):
        cut_out(photo, (10, 10, 20, 20))
    flat = np.full((300, 300, 3), 128, np.uint8)
    assert cut_out(flat).warning is not None


def test_one_photo_in_five_is_kept_for_testing_only():
    sprites = [np.full((4, 4, 4), i, np.uint8) for i in range(10)]
    train, test = split_photos(sprites)
    assert [int(s[0, 0, 0]) for s in test] == [4, 9] and len(train) == 8
    assert [int(s[0, 0, 0]) for s in split_photos(sprites[:3])[1]] == [2]
    with pytest.raises(ValueError):
        split_photos(sprites[:1])


LIVE = {
    "rendered_map50_per_class": {"tea": 0.99, "coffee": 0.97},
    "composite_map50_per_class": {"tea": 0.95, "coffee": 0.93},
    "phantoms_per_1000": 1.0,
}


def _candidate(new: float, tea: float = 0.99, phantoms: float = 1.0) -> dict:
    return {"rendered_map50_per_class": {"tea": tea, "coffee": 0.97, "box": 0.99},
            "composite_map50_per_class": {"tea": 0.95, "coffee": 0.94, "box": new}, "phantoms_per_1000": phantoms}


def test_the_gate_passes_a_good_model_and_names_every_reason_to_refuse_a_bad_one():
    limits = GateLimits()
    assert gate(_candidate(0.93), LIVE, ["box"], limits) == []
    assert gate(_candidate(0.98, tea=0.975), LIVE, ["box"], limits) == []  # a drop within 0.02 is allowed
    reasons = gate(_candidate(0.6, tea=0.9, phantoms=2.5), LIVE, ["box"], limits)
    assert len(reasons) == 3
    assert "box: mAP50 0.600" in reasons[0] and "tea: rendered mAP50 fell" in reasons[1] and "phantoms" in reasons[2]
    assert gate(_candidate(0.6), LIVE, ["box"], GateLimits(new_class_map50=0.5)) == []


def test_exporting_weights_writes_only_into_the_output_folder(tmp_path):
    """ultralytics writes an ONNX beside the weights it exports: the shipped folder must stay untouched."""
    import hashlib

    from models.store.detector import ProductDetector
    from models.store.render import catalogue_looks, render_scene
    from models.store.train import export

    shipped = PROJECT_ROOT / "data" / "detector"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped.iterdir()}
    names = {0: "tea-yuancui", 1: "tea-fenjie", 2: "tea-oolong", 3: "coffee-black"}
    onnx = export(shipped / "store_detector.pt", 320, names, tmp_path / "out")
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped.iterdir()} == before
    assert sorted(p.name for p in onnx.parent.iterdir()) == ["store_detector.json", "store_detector.onnx",
                                                              "store_detector.pt"]
    image, labels = render_scene(np.random.default_rng(11), catalogue_looks(), size=320, classes=[2], distractors=0)
    exported, served = (ProductDetector(path).detect([cv2.cvtColor(image, cv2.COLOR_RGB2BGR)])[0]
                        for path in (onnx, shipped / "store_detector.onnx"))
    assert [d.class_id for d in exported] == [d.class_id for d in served] == [labels[0][0]]


def test_hard_negatives_are_recorded_and_replayed_as_the_same_crops(tmp_path):
    """A model keeps where its hard negatives were cut; fine-tuning it later trains on the very same crops."""
    from models.store.train import PhotoPool, mine_hard_negatives, replay_hard_negatives

    corpus = tmp_path / "corpus"
    (corpus / "train").mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        cv2.imwrite(str(corpus / "train" / f"{name}.jpg"), cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR))
    shipped = PROJECT_ROOT / "data" / "detector" / "store_detector.onnx"
    pool = PhotoPool(sorted((corpus / "train").glob("*.jpg")))
    mined = mine_hard_negatives(tmp_path / "first", shipped, pool, 4, 320, conf=0.01, seed=0)
    assert len(mined) == 4 and {m["picture"] for m in mined} <= {f"train/{p.name}" for p in pool.paths}
    crops = [*mined, {**mined[0], "picture": "train/gone.jpg"}]  # a picture this corpus does not have
    assert replay_hard_negatives(tmp_path / "again", corpus, crops, 320) == 4
    for i in range(4):
        assert ((tmp_path / "again" / "images" / "train" / f"kept-{i:05d}.jpg").read_bytes()
                == (tmp_path / "first" / "images" / "train" / f"hard-{i:05d}.jpg").read_bytes())
    assert replay_hard_negatives(tmp_path / "sample", corpus, mined, 320, sample=2) == 2
