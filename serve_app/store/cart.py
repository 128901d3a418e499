"""Cart rules: when a detected product enters the cart, and how cart lines change.

A product enters the cart only on consistent evidence. A detection counts as evidence when its score
is at least `min_score` (above the detector's own threshold). Evidence is followed from frame to frame
as tracks: a detection continues the track of its product whose last box it overlaps most (IoU at
least `min_iou`), otherwise it starts a new one. A track is stable once it has evidence in at least
`k` of the last `n` processed frames - the same object held still enough to be seen in the same place,
not `k` scattered hits of a product here and there in a busy scene (real texture fools a detector in
single frames, rarely in the same place frame after frame). A track with no evidence for `n` frames
ends.

Quantity follows what the shopper shows: the units added are the stable tracks of a product seen
together (two bottles held up together add 2). While a product stays in view it is not added again,
but if more stable copies appear together, the difference is added. Once every track of it has ended it
counts as gone, and showing it again adds it again (the shopper is scanning another unit). Units are
taken out with `cart_remove`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    """One object of one product followed across frames."""

    class_id: int
    box: tuple[float, ...]
    hits: list[int] = field(default_factory=list)  # frame numbers with evidence


class CartTracker:
    """Per connection: turns per-frame detections into units to add to the cart."""

    def __init__(self, k: int = 3, n: int = 5, min_score: float = 0.5, min_iou: float = 0.3):
        if not 1 <= k <= n:
            raise ValueError("need 1 <= k <= n")
        self.k, self.n, self.min_score, self.min_iou = k, n, min_score, min_iou
        self.frame = 0
        self.tracks: list[_Track] = []
        self.in_view: dict[int, int] = {}  # class id -> units already added during this appearance

    def update(self, detections: list[dict]) -> dict[int, int]:
        """Feed one frame's detections ({class_id, score, box}); returns {class_id: units to add}."""
        self.frame += 1
        evidence = sorted((d for d in detections if d["score"] >= self.min_score), key=lambda d: -d["score"])
        taken: set[int] = set()
        for d in evidence:
            box = tuple(d["box"])
            candidates = [(iou(t.box, box), i) for i, t in enumerate(self.tracks)
                          if t.class_id == d["class_id"] and i not in taken]
            overlap, best = max(candidates, default=(0.0, -1))
            if overlap >= self.min_iou:
                track = self.tracks[best]
                track.box = box
            else:
                track = _Track(d["class_id"], box)
                self.tracks.append(track)
                best = len(self.tracks) - 1
            track.hits.append(self.frame)
            taken.add(best)
        window_start = self.frame - self.n + 1
        for track in self.tracks:
            track.hits = [f for f in track.hits if f >= window_start]
        self.tracks = [t for t in self.tracks if t.hits]
        stable: dict[int, int] = {}
        for track in self.tracks:
            if len(track.hits) >= self.k:
                stable[track.class_id] = stable.get(track.class_id, 0) + 1
        present = {t.class_id for t in self.tracks}
        for class_id in list(self.in_view):
            if class_id not in present:
                del self.in_view[class_id]
        additions: dict[int, int] = {}
        for class_id, units in stable.items():
            added = self.in_view.get(class_id, 0)
            if units > added:
                additions[class_id] = units - added
                self.in_view[class_id] = units
        return additions


def add_units(cart: list[dict], product: dict, units: int) -> list[dict]:
    """Cart with `units` more of `product` (merged into its line if present)."""
    for line in cart:
        if line["product_id"] == product["id"]:
            line["quantity"] += units
            return cart
    cart.append({"product_id": product["id"], "name": product["name"], "quantity": units, "price": product["price"]})
    return cart


def cart_total(cart: list[dict]) -> float:
    return sum(line["price"] * line["quantity"] for line in cart)
