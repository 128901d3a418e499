"""Cart rules without a server."""

from collections import Counter

import pytest

from serve_app.store.cart import CartTracker, add_units, cart_total


def feed(tracker: CartTracker, frames: list[dict]) -> list[dict]:
    return [tracker.update(Counter(f)) for f in frames]


def test_product_enters_after_k_of_n_frames_and_only_once_while_in_view():
    t = CartTracker(k=3, n=5)
    out = feed(t, [{0: 1}, {}, {0: 1}, {0: 1}, {0: 1}, {0: 1}, {}, {0: 1}])
    assert out[:3] == [{}, {}, {}]
    assert out[3] == {0: 1}
    assert all(o == {} for o in out[4:])


def test_flicker_below_k_never_adds():
    t = CartTracker(k=3, n=5)
    assert all(o == {} for o in feed(t, [{1: 1}, {}, {}, {1: 1}, {}, {}, {1: 1}, {}]))


def test_quantity_follows_copies_seen_together():
    t = CartTracker(k=2, n=3)
    out = feed(t, [{0: 2}, {0: 2}, {0: 2}, {0: 3}, {0: 3}, {0: 1}])
    assert out[1] == {0: 2}  # two bottles held up together
    assert out[4] == {0: 1}  # a third one joins
    assert sum(sum(o.values()) for o in out) == 3


def test_product_counts_again_after_leaving_the_view():
    t = CartTracker(k=2, n=3)
    out = feed(t, [{0: 1}, {0: 1}, {}, {}, {}, {0: 1}, {0: 1}])
    assert [o for o in out if o] == [{0: 1}, {0: 1}]


def test_short_absence_does_not_count_as_leaving():
    t = CartTracker(k=2, n=3)
    out = feed(t, [{0: 1}, {0: 1}, {}, {}, {0: 1}, {0: 1}])
    assert [o for o in out if o] == [{0: 1}]


def test_invalid_window():
    with pytest.raises(ValueError):
        CartTracker(k=4, n=3)


def test_cart_lines_merge_and_total():
    tea = {"id": "tea", "name": "Tea", "price": 150}
    cart = add_units([], tea, 1)
    cart = add_units(cart, {"id": "cof", "name": "Coffee", "price": 80}, 2)
    cart = add_units(cart, tea, 2)
    assert [(l["product_id"], l["quantity"]) for l in cart] == [("tea", 3), ("cof", 2)]
    assert cart_total(cart) == 3 * 150 + 2 * 80
