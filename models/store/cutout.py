"""Cut a product out of an admin's photo with OpenCV GrabCut, for composing training scenes.

The photo may have any background. Without a box the product is assumed to fill the middle of the photo;
an admin who sees a bad preview draws a box around the product and the cut is made again inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 400  # GrabCut runs on the photo scaled to this size (it is slow on full-size photos)
DEFAULT_MARGIN = 0.06  # without a box: everything but this border of the photo may be the product


@dataclass(frozen=True)
class Cutout:
    sprite: np.ndarray  # RGBA (RGB order), cropped to the product
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the product in the photo
    coverage: float  # share of the box's area the product covers
    warning: str | None  # why the cut looks wrong, for the admin


def cut_out(photo: np.ndarray, box: tuple[int, int, int, int] | None = None, iterations: int = 5) -> Cutout:
    """The product in a BGR photo as an RGBA sprite; `box` (x0, y0, x1, y1) says where it is."""
    h, w = photo.shape[:2]
    if box is None:
        box = (
            int(w * DEFAULT_MARGIN),
            int(h * DEFAULT_MARGIN),
            int(w * (1 - DEFAULT_MARGIN)),
            int(h * (1 - DEFAULT_MARGIN)),
        )
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise ValueError("the box must be at least 16 x 16 pixels inside the photo")
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(photo, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    rect = (round(x0 * scale), round(y0 * scale), max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale)))
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.grabCut(small, mask, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), iterations,
                cv2.GC_INIT_WITH_RECT)
    foreground = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground)
    if count > 1:  # keep the largest piece: the product, not specks of background
        foreground = (labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())).astype(np.uint8)
    alpha = cv2.resize(foreground * 255, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    inside = np.zeros_like(alpha)
    inside[y0:y1, x0:x1] = alpha[y0:y1, x0:x1]  # nothing outside the box, whatever the scaling did
    alpha = inside
    ys, xs = np.nonzero(alpha > 127)
    coverage = len(xs) / float((x1 - x0) * (y1 - y0))
    if len(xs) == 0:
        return Cutout(
            np.zeros((1, 1, 4), np.uint8), (x0, y0, x1, y1), 0.0, "nothing was found: draw a box around the product"
        )
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    rgba = np.dstack([cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), alpha])[by0:by1, bx0:bx1]
    warning = None
    if coverage < 0.05:
        warning = "the cut-out is tiny: draw a box around the product"
    elif coverage > 0.97:
        warning = "the cut-out is the whole box: draw a tighter box, or use a plainer background"
    return Cutout(np.ascontiguousarray(rgba), (bx0, by0, bx1, by1), round(coverage, 3), warning)
