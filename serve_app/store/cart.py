"""Cart rules: when a detected product enters the cart, and how cart lines change.

A product enters the cart once it is seen stably: present in at least `k` of the last `n` processed
frames. Quantity follows what the shopper shows: the number of units added is the number of copies
seen together in at least `k` of those frames (two bottles held up together add 2). While a product
stays in view it is not added again, but if more copies appear together, the difference is added.
Once it has been absent from `n` consecutive frames it counts as gone, and showing it again adds it
again (the shopper is scanning another unit). Units are taken out with `cart_remove`.
"""

from __future__ import annotations

from collections import Counter, deque


class CartTracker:
    """Per connection: turns per-frame detections (class id counts) into units to add to the cart."""

    def __init__(self, k: int = 3, n: int = 5):
        if not 1 <= k <= n:
            raise ValueError("need 1 <= k <= n")
        self.k, self.n = k, n
        self.window: deque[Counter] = deque(maxlen=n)
        self.in_view: dict[int, int] = {}  # class id -> units already added during this appearance

    def update(self, class_counts: Counter) -> dict[int, int]:
        """Feed one frame's detections; returns {class_id: units to add} (empty most of the time)."""
        self.window.append(Counter(class_counts))
        additions: dict[int, int] = {}
        for class_id in set(self.in_view).union(*self.window):
            counts = sorted((frame[class_id] for frame in self.window), reverse=True)
            stable_units = counts[self.k - 1] if len(counts) >= self.k else 0
            if stable_units == 0:
                if all(frame[class_id] == 0 for frame in self.window) and len(self.window) == self.n:
                    self.in_view.pop(class_id, None)
                continue
            added = self.in_view.get(class_id, 0)
            if stable_units > added:
                additions[class_id] = stable_units - added
                self.in_view[class_id] = stable_units
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
