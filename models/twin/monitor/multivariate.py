"""`multivariate`: Hotelling T² of the drift EWMAs with the calibrated precision matrix. Real faults move
several residuals together, each too little for its own drift alert; the alert names the signals whose
removal would lower T² most."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.alerts import NO_SAMPLE
from models.twin.monitor.calibration import MultivariateCalibration
from models.twin.monitor.events import CONTRIBUTORS, KIND_CODE, push

MULTIVARIATE = KIND_CODE["multivariate"]


class MultivariateDrift:
    """The residual vector's alert (signal "*"), with the same half-threshold hysteresis and off-delay
    (`clear_after` samples) as a drift. `state` holds [open, began, first, calm run] and `contributors`
    the target indices the open alert names (-1: none)."""

    STATE = ("state", "contributors")

    def __init__(self, targets: list[str], calibration: MultivariateCalibration, clear_after: int):
        self.precision = np.array(calibration.precision, dtype=np.float64)
        self.index = np.array([targets.index(s) for s in calibration.signals], dtype=np.int64)
        self.threshold = float(calibration.threshold)
        self.clear_after = clear_after
        self.state = np.array([0, NO_SAMPLE, NO_SAMPLE, 0], dtype=np.int64)
        self.contributors = np.full(CONTRIBUTORS, -1, dtype=np.int64)

    @property
    def open(self) -> bool:
        return bool(self.state[0])

    def arrays(self) -> tuple:
        return self.precision, self.index, self.threshold, self.clear_after, self.state, self.contributors


@njit(cache=True, nogil=True)
def multivariate_step(part, ewma, row, sample, events) -> None:
    """One sample of MultivariateDrift."""
    precision, index, threshold, clear_after, state, contributors = part
    m = len(index)
    pulled = np.zeros(m)
    t2 = 0.0
    for a in range(m):
        for b in range(m):
            pulled[a] += precision[a, b] * ewma[index[b]]
        t2 += ewma[index[a]] * pulled[a]
    calm = t2 < threshold / 2
    state[3] = state[3] + 1 if calm else 0
    if calm:
        state[1] = NO_SAMPLE
    elif state[1] == NO_SAMPLE:
        state[1] = sample
    if not state[0] and t2 > threshold:
        share = np.empty(m)  # how much T² would drop without each signal
        for a in range(m):
            share[a] = pulled[a] ** 2 / precision[a, a]
        order = np.argsort(-share)
        for c in range(len(contributors)):
            contributors[c] = index[order[c]] if c < m and share[order[c]] > 0 else -1
        state[0], state[2] = 1, state[1] if state[1] != NO_SAMPLE else sample
        push(events, row, MULTIVARIATE, -1, True, state[2], t2, threshold, contributors[0], contributors[1],
             contributors[2])
    elif state[0] and state[3] >= clear_after:
        state[0] = 0
        push(events, row, MULTIVARIATE, -1, False, state[2], t2, threshold, contributors[0], contributors[1],
             contributors[2])
