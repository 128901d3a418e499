"""`envelope`: a boundary signal (an input of the twin) outside the range the twin was trained on. The
plant has moved somewhere the twin has not seen, so its predictions extrapolate and residual alerts on
the targets (or their absence) mean less; a fault that only shows in a manipulated input, while the
controller keeps the targets in band, shows here."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.alerts import SignalAlerts
from models.twin.monitor.calibration import InputRange
from models.twin.monitor.events import KIND_CODE, push

ENVELOPE = KIND_CODE["envelope"]
OUTSIDE_SAMPLES = 3  # samples in a row outside the range before the alert opens (one odd reading is not a move)


class InputEnvelope:
    """Per boundary signal: outside [low - margin * span, high + margin * span] for OUTSIDE_SAMPLES samples
    in a row opens the alert (its score: how far outside, in spans); `clear_after` samples in a row inside
    clear it. A missing (NaN) input counts as inside. `columns`: each signal's place in the monitor's input
    vector; events name it `offset + column` (the monitor numbers its inputs after its targets)."""

    STATE = ("outside", "inside")

    def __init__(self, ranges: list[InputRange], margin: float, clear_after: int, columns: np.ndarray, offset: int):
        n = len(ranges)
        low = np.array([r.low for r in ranges], dtype=np.float64)
        high = np.array([r.high for r in ranges], dtype=np.float64)
        self.span = np.maximum(high - low, 1e-12 * np.maximum(np.abs(high), 1.0))
        self.low, self.high = low - margin * self.span, high + margin * self.span
        self.margin = float(margin)
        self.clear_after = int(clear_after)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.offset = int(offset)
        self.outside = np.zeros(n, dtype=np.int64)  # samples in a row outside
        self.inside = np.zeros(n, dtype=np.int64)  # samples in a row inside
        self.alerts = SignalAlerts("envelope", n)

    def arrays(self) -> tuple:
        return (self.low, self.high, self.span, self.margin, self.clear_after, self.columns, self.offset, self.outside,
                self.inside, self.alerts.arrays())


@njit(cache=True, nogil=True)
def envelope_step(part, x, row, sample, events) -> None:
    """One sample of InputEnvelope; x: the monitor's input vector of the sample."""
    low, high, span, margin, clear_after, columns, offset, outside, inside, alerts = part
    began, first, is_open = alerts
    for b in range(len(low)):
        value = x[columns[b]]
        beyond = 0.0 if np.isnan(value) else max(low[b] - value, value - high[b], 0.0) / span[b]
        if beyond > 0.0:
            if outside[b] == 0:
                began[b] = sample
            outside[b] += 1
            inside[b] = 0
        else:
            outside[b] = 0
            inside[b] += 1
        opening, clearing = outside[b] >= OUTSIDE_SAMPLES and not is_open[b], inside[b] >= clear_after and is_open[b]
        if opening:
            first[b], is_open[b] = began[b], True
        elif clearing:
            is_open[b] = False
        if opening or clearing:
            signal = offset + columns[b]
            push(events, row, ENVELOPE, signal, opening, first[b], beyond + margin, margin, signal, -1, -1)


def input_ranges(boundary: list[str], values: np.ndarray) -> dict[str, InputRange]:
    """Each boundary signal's range in `values` [n, n_boundary] (NaN left out; signals never seen left out)."""
    ranges = {}
    for b, name in enumerate(boundary):
        seen = values[:, b][np.isfinite(values[:, b])]
        if len(seen):
            ranges[name] = InputRange(low=float(seen.min()), high=float(seen.max()))
    return ranges
