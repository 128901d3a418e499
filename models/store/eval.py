"""How good a store detector is, measured through the served ONNX path (models.store.detector.ProductDetector).

- mAP50 per class on rendered test scenes and on products composed onto held-out real photos;
- phantoms: detections at the served score threshold on held-out real pictures and video frames, where
  nothing is for sale (per 1,000 frames);
- milliseconds per single frame on this machine's CPU (a kiosk sends one frame at a time).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from models.store.detector import ProductDetector
from models.store.metrics import average_precision
from models.store.real_scenes import held_out_videos, pictures

MAP_CONF = 0.001  # mAP is computed over the whole score range, as ultralytics does


def labeled_split(root: Path, split: str) -> tuple[list[np.ndarray], list[list[tuple[int, tuple]]]]:
    """BGR images of a YOLO data set split and their boxes [(class_id, (x0, y0, x1, y1))] in pixels."""
    images, truths = [], []
    for path in sorted((root / "images" / split).glob("*.jpg")):
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        boxes = []
        for line in (root / "labels" / split / f"{path.stem}.txt").read_text().splitlines():
            c, cx, cy, bw, bh = line.split()
            cx, cy, bw, bh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
            boxes.append((int(c), (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)))
        images.append(image)
        truths.append(boxes)
    return images, truths


def map50_per_class(detector: ProductDetector, images: list[np.ndarray], truths, class_ids) -> dict[int, float]:
    """AP at IoU 0.5 of each class that has at least one true box."""
    found = [[(d.class_id, d.score, d.box) for d in ds] for start in range(0, len(images), 16)
             for ds in detector.detect(images[start:start + 16])]
    aps = {c: average_precision(found, truths, c, 0.5) for c in class_ids}
    return {c: round(ap, 4) for c, ap in aps.items() if ap is not None}


def real_frames(corpus: Path) -> list[Path]:
    """Every held-out real frame: the still pictures and the videos' frames."""
    return pictures(corpus, "heldout") + [f for video in held_out_videos(corpus) for f in video]


def phantoms(detector: ProductDetector, frames: list[Path]) -> tuple[float, float]:
    """(detections per 1,000 frames, ms per single frame) on frames with no product."""
    found, seconds = 0, 0.0
    for path in frames:
        image = cv2.imread(str(path))
        started = time.perf_counter()
        found += len(detector.detect([image])[0])
        seconds += time.perf_counter() - started
    return 1000 * found / max(len(frames), 1), 1000 * seconds / max(len(frames), 1)


def evaluate(onnx: Path, dataset: Path, corpus: Path, names: Mapping[int, str], conf: float) -> dict:
    """The detector's metrics on a data set written by models.store.train and the held-out corpus."""
    scoring = ProductDetector(onnx, conf=MAP_CONF, prefer_gpu=False)
    metrics: dict = {}
    for split in ("rendered", "composite"):
        images, truths = labeled_split(dataset, f"test_{split}")
        per_class = map50_per_class(scoring, images, truths, names)
        metrics[f"{split}_map50"] = round(float(np.mean(list(per_class.values()))), 4) if per_class else 0.0
        metrics[f"{split}_map50_per_class"] = {names[c]: ap for c, ap in per_class.items()}
    frames = real_frames(corpus)
    per_1000, ms = phantoms(ProductDetector(onnx, conf=conf, prefer_gpu=False), frames)
    metrics.update(phantoms_per_1000=round(per_1000, 1), real_frames=len(frames), ms_per_frame=round(ms, 2))
    return metrics
