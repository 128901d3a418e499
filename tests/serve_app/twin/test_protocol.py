"""Validation of twin batches: the whole-batch fast path gives the same rows as row-by-row checks, and a
bad row gets the same error, naming the row and the signal, whichever path finds it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serve_app.twin.protocol import batch_rows, signal_row
from serve_app.web.wire import WireError

NAMES = ["Flow_boundary_1", "Temp_boundary_1", "Pressure_boundary_1"]


def good_batch(n: int = 6) -> list[dict]:
    rng = np.random.default_rng(3)
    return [{name: float(v) for name, v in zip(NAMES, rng.normal(size=len(NAMES)))} for _ in range(n)]


def test_well_formed_batch_gives_the_rows_row_by_row_validation_gives():
    batch = good_batch()
    batch[1]["Temp_boundary_1"] = 7  # integers are numbers too
    rows, timestamps = batch_rows({"batch": batch, "timestamps": list(range(6))}, NAMES, 10)
    assert rows.dtype == np.float64 and rows.shape == (6, 3) and rows[1, 1] == 7.0
    np.testing.assert_array_equal(rows, np.asarray([signal_row(v, NAMES) for v in batch]))
    assert timestamps == [str(i) for i in range(6)]


@pytest.mark.parametrize("bad_row, code, where", [
    ({"Flow_boundary_1": 1.0, "Temp_boundary_1": 2.0}, "MISSING_SIGNALS", "batch[3]"),
    ({"Flow_boundary_1": 1.0, "Temp_boundary_1": 2.0, "Other": 3.0}, "MISSING_SIGNALS", "batch[3]"),
    ({**dict.fromkeys(NAMES, 1.0), "Other": 3.0}, "UNKNOWN_SIGNALS", "batch[3]"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": True}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": "2.0"}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": None}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": math.nan}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": -math.inf}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ({**dict.fromkeys(NAMES, 1.0), "Temp_boundary_1": 10 ** 400}, "INVALID_SIGNAL_VALUE", "batch[3].Temp_boundary_1"),
    ([1.0, 2.0, 3.0], "INVALID_MESSAGE", "batch[3]"),
])
def test_a_bad_row_is_named_in_the_error(bad_row, code, where):
    batch = good_batch()
    batch[3] = bad_row
    with pytest.raises(WireError) as caught:
        batch_rows({"batch": batch}, NAMES, 10)
    reply = caught.value.to_message()
    assert reply["error_code"] == code and f"`{where}`" in reply["message"], reply
