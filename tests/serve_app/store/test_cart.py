"""Cart rules without a server: evidence followed as tracks across frames."""

import pytest

from serve_app.store.cart import CartTracker, add_units, cart_total, iou


def det(class_id: int, x: float = 100, y: float = 100, score: float = 0.9, size: float = 80) -> dict:
    return {"class_id": class_id, "score": score, "box": [x, y, x + size, y + size]}


def feed(tracker: CartTracker, frames: list[list[dict]]) -> list[dict]:
    return [tracker.update(f) for f in frames]


def test_product_enters_after_k_of_n_frames_and_only_once_while_in_view():
    t = CartTracker(k=3, n=5)
    out = feed(t, [[det(0)], [], [det(0, 104)], [det(0, 108)], [det(0, 110)], [det(0)], [], [det(0)]])
    assert out[:3] == [{}, {}, {}]
    assert out[3] == {0: 1}
    assert all(o == {} for o in out[4:])


def test_flicker_below_k_never_adds():
    t = CartTracker(k=3, n=5)
    assert all(o == {} for o in feed(t, [[det(1)], [], [], [det(1)], [], [], [det(1)], []]))


def test_hits_scattered_over_a_busy_scene_never_add():
    """A real scene fools the detector in single frames, each time somewhere else: no track is stable."""
    t = CartTracker(k=3, n=5)
    frames = [[det(2, x=50 + 150 * (i % 4), y=40 + 120 * (i % 3))] for i in range(30)]
    assert all(o == {} for o in feed(t, frames))


def test_low_score_detections_are_not_evidence():
    t = CartTracker(k=2, n=3, min_score=0.6)
    assert all(o == {} for o in feed(t, [[det(0, score=0.55)]] * 10))
    assert feed(t, [[det(0, score=0.7)]] * 2)[-1] == {0: 1}


def test_quantity_follows_copies_seen_together():
    t = CartTracker(k=2, n=3)
    two = [det(0, 50), det(0, 300)]
    three = two + [det(0, 550)]
    out = feed(t, [two, two, two, three, three, [det(0, 50)]])
    assert out[1] == {0: 2}  # two bottles held up together
    assert out[4] == {0: 1}  # a third one joins
    assert sum(sum(o.values()) for o in out) == 3


def test_a_product_moved_across_the_view_is_one_unit():
    t = CartTracker(k=3, n=5)
    out = feed(t, [[det(0, 100 + 20 * i)] for i in range(12)])  # boxes overlap from frame to frame
    assert [o for o in out if o] == [{0: 1}]


def test_product_counts_again_after_leaving_the_view():
    t = CartTracker(k=2, n=3)
    out = feed(t, [[det(0)], [det(0)], [], [], [], [det(0)], [det(0)]])
    assert [o for o in out if o] == [{0: 1}, {0: 1}]


def test_short_absence_does_not_count_as_leaving():
    t = CartTracker(k=2, n=3)
    out = feed(t, [[det(0)], [det(0)], [], [], [det(0)], [det(0)]])
    assert [o for o in out if o] == [{0: 1}]


def test_iou_of_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_invalid_window():
    with pytest.raises(ValueError):
        CartTracker(k=4, n=3)


def test_cart_lines_merge_and_total():
    tea = {"id": "tea", "name": "Tea", "price": 150}
    cart = add_units([], tea, 1)
    cart = add_units(cart, {"id": "cof", "name": "Coffee", "price": 80}, 2)
    cart = add_units(cart, tea, 2)
    assert [(item["product_id"], item["quantity"]) for item in cart] == [("tea", 3), ("cof", 2)]
    assert cart_total(cart) == 3 * 150 + 2 * 80
