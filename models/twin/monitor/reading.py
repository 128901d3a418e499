"""Detectors of the reading itself, whatever the twin predicts: `missing` (no value for a while) and
`stuck` (the value stopped moving)."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.alerts import SignalAlerts, switch
from models.twin.monitor.calibration import AlertThresholds, SignalCalibration
from models.twin.monitor.events import KIND_CODE

SUSPECT_STUCK = 2  # repeats of the same reading after which drift and spike wait for the stuck detector
MISSING, STUCK = KIND_CODE["missing"], KIND_CODE["stuck"]


class MissingReadings:
    """`missing`: no measured value for `missing_samples` samples in a row, once the signal has been seen;
    clears when a value arrives."""

    STATE = ("seen", "count")

    def __init__(self, thresholds: list[AlertThresholds]):
        n = len(thresholds)
        self.limit = np.array([t.missing_samples for t in thresholds], dtype=np.int64)
        self.seen = np.zeros(n, dtype=np.bool_)
        self.count = np.zeros(n, dtype=np.int64)  # samples in a row without a value
        self.alerts = SignalAlerts("missing", n)

    def arrays(self) -> tuple:
        return self.limit, self.seen, self.count, self.alerts.arrays()


@njit(cache=True, nogil=True)
def missing_step(part, present, row, sample, events) -> None:
    """One sample of MissingReadings."""
    limit, seen, count, alerts = part
    began = alerts[0]
    for j in range(len(limit)):
        seen[j] = seen[j] or present[j]
        count[j] = 0 if present[j] else count[j] + seen[j]
        if count[j] == 1:
            began[j] = sample
        switch(alerts, j, count[j] >= limit[j], present[j], count[j], limit[j], MISSING, row, sample, events)


class StuckReadings:
    """`stuck`: the value moved less than `stuck_ratio` * its normal step for `stuck_samples` samples in a row
    (the twin expects it to move); clears at the first real change.

    A reading repeated more often than in normal operation (`SignalCalibration.hold_samples`, at least
    `SUSPECT_STUCK` times) is suspect before it is confirmed stuck: `trusted` is false for it, so the
    residual detectors wait and one fault raises one alert kind. Analysers that sample and hold are
    calibrated with their normal hold, so neither the alert nor the pause mistakes it for a fault."""

    STATE = ("last", "count")

    def __init__(self, signals: list[SignalCalibration], thresholds: list[AlertThresholds]):
        n = len(signals)
        self.still = np.array([s.step_std * t.stuck_ratio for s, t in zip(signals, thresholds)], dtype=np.float64)
        self.limit = np.array([t.stuck_samples for t in thresholds], dtype=np.int64)
        self.suspect = np.array([max(SUSPECT_STUCK, s.hold_samples + 1) for s in signals], dtype=np.int64)
        self.last = np.full(n, np.nan)
        self.count = np.zeros(n, dtype=np.int64)  # samples in a row without a real move
        self.alerts = SignalAlerts("stuck", n)

    def arrays(self) -> tuple:
        return self.still, self.limit, self.suspect, self.last, self.count, self.alerts.arrays()


@njit(cache=True, nogil=True)
def stuck_step(part, y, present, trusted, row, sample, events) -> None:
    """One sample of StuckReadings; `trusted` is set per signal: neither stuck nor suspect of it."""
    still, limit, suspect, last, count, alerts = part
    began, is_open = alerts[0], alerts[2]
    for j in range(len(limit)):
        moved = present[j] and not (abs(y[j] - last[j]) <= still[j])  # a first reading counts as a move
        count[j] = 0 if moved else count[j] + present[j]
        if present[j]:
            last[j] = y[j]
        if moved:
            began[j] = sample
        switch(alerts, j, count[j] >= limit[j], moved, count[j], limit[j], STUCK, row, sample, events)
        trusted[j] = not is_open[j] and count[j] < suspect[j]
