"""Detectors of the reading itself, whatever the twin predicts: `missing` (no value for a while) and
`stuck` (the value stopped moving)."""

from __future__ import annotations

import numpy as np

from models.twin.monitor.alerts import SignalAlerts
from models.twin.monitor.calibration import AlertThresholds, SignalCalibration
from models.twin.monitor.events import AlertEvent

SUSPECT_STUCK = 2  # repeats of the same reading after which drift and spike wait for the stuck detector


class MissingReadings:
    """`missing`: no measured value for `missing_samples` samples in a row, once the signal has been seen;
    clears when a value arrives."""

    def __init__(self, targets: list[str], thresholds: list[AlertThresholds]):
        n = len(targets)
        self.limit = np.array([t.missing_samples for t in thresholds])
        self.seen = np.zeros(n, dtype=bool)
        self.count = np.zeros(n, dtype=int)  # samples in a row without a value
        self.alerts = SignalAlerts("missing", targets)

    def update(self, present: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        self.seen |= present
        self.count = np.where(present, 0, self.count + self.seen)
        self.alerts.began[self.count == 1] = ts
        self.alerts.switch(self.count >= self.limit, present, self.count, self.limit, ts, events)


class StuckReadings:
    """`stuck`: the value moved less than `stuck_ratio` * its normal step for `stuck_samples` samples in a row
    (the twin expects it to move); clears at the first real change.

    A reading repeated more often than in normal operation (`SignalCalibration.hold_samples`, at least
    `SUSPECT_STUCK` times) is suspect before it is confirmed stuck: `trusted` is false for it, so the
    residual detectors wait and one fault raises one alert kind. Analysers that sample and hold are
    calibrated with their normal hold, so neither the alert nor the pause mistakes it for a fault."""

    def __init__(self, targets: list[str], signals: list[SignalCalibration], thresholds: list[AlertThresholds]):
        n = len(targets)
        self.still = np.array([s.step_std * t.stuck_ratio for s, t in zip(signals, thresholds)])
        self.limit = np.array([t.stuck_samples for t in thresholds])
        self.suspect = np.array([max(SUSPECT_STUCK, s.hold_samples + 1) for s in signals])
        self.last = np.full(n, np.nan)
        self.count = np.zeros(n, dtype=int)  # samples in a row without a real move
        self.alerts = SignalAlerts("stuck", targets)

    def update(self, y: np.ndarray, present: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        moved = present & ~(np.abs(y - self.last) <= self.still)  # a first reading counts as a move
        self.count = np.where(moved, 0, self.count + present)
        self.last = np.where(present, y, self.last)
        self.alerts.began[moved] = ts
        self.alerts.switch(self.count >= self.limit, moved, self.count, self.limit, ts, events)

    def trusted(self) -> np.ndarray:
        """Per signal: neither stuck nor suspect of it."""
        return ~self.alerts.open & (self.count < self.suspect)
