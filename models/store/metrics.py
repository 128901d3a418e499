"""Detection accuracy: average precision at an IoU threshold (all-point interpolation), per class and mean."""

from __future__ import annotations

import numpy as np


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box against many."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def average_precision(predictions: list[list[tuple[int, float, tuple]]], truths: list[list[tuple[int, tuple]]],
                      class_id: int, iou_threshold: float = 0.5) -> float | None:
    """AP of one class over images; predictions (class, score, box), truths (class, box). None if no truth."""
    gt = {i: np.array([b for c, b in t if c == class_id], dtype=float).reshape(-1, 4) for i, t in enumerate(truths)}
    n_truth = sum(len(g) for g in gt.values())
    if n_truth == 0:
        return None
    scored = sorted(((s, i, np.asarray(b, float)) for i, p in enumerate(predictions) for c, s, b in p if c == class_id),
                    key=lambda x: -x[0])
    used = {i: np.zeros(len(g), bool) for i, g in gt.items()}
    hits = []
    for _, image, box in scored:
        overlaps = iou(box, gt[image]) if len(gt[image]) else np.zeros(0)
        best = int(overlaps.argmax()) if len(overlaps) else -1
        hit = best >= 0 and overlaps[best] >= iou_threshold and not used[image][best]
        if hit:
            used[image][best] = True
        hits.append(hit)
    tp = np.cumsum(hits)
    recall = tp / n_truth
    precision = tp / np.arange(1, len(hits) + 1)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def mean_average_precision(predictions, truths, class_ids, iou_threshold: float = 0.5) -> float:
    aps = [average_precision(predictions, truths, c, iou_threshold) for c in class_ids]
    aps = [a for a in aps if a is not None]
    return float(np.mean(aps)) if aps else 0.0
