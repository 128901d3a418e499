"""`multivariate`: Hotelling T² of the drift EWMAs with the calibrated precision matrix. Real faults move
several residuals together, each too little for its own drift alert; the alert names the signals whose
removal would lower T² most."""

from __future__ import annotations

import numpy as np

from models.twin.monitor.calibration import MultivariateCalibration
from models.twin.monitor.events import AlertEvent


class MultivariateDrift:
    """The residual vector's alert (signal "*"), with the same half-threshold hysteresis and off-delay
    (`clear_after` samples) as a drift."""

    def __init__(self, targets: list[str], calibration: MultivariateCalibration, clear_after: int):
        self.targets = targets
        self.precision = np.array(calibration.precision)
        self.index = np.array([targets.index(s) for s in calibration.signals])
        self.threshold = calibration.threshold
        self.clear_after = clear_after
        self.open, self.began, self.first = False, "", ""
        self.calm = 0  # samples in a row with T² under half the threshold
        self.contributors: list[str] = []

    def update(self, ewma: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        e = ewma[self.index]
        pulled = self.precision @ e
        t2 = float(e @ pulled)
        calm = t2 < self.threshold / 2
        self.calm = self.calm + 1 if calm else 0
        if calm:
            self.began = ""
        elif not self.began:
            self.began = ts
        if not self.open and t2 > self.threshold:
            share = pulled ** 2 / np.diag(self.precision)  # how much T² would drop without each signal
            top = [j for j in np.argsort(-share)[:3] if share[j] > 0]
            self.open, self.first = True, self.began or ts
            self.contributors = [self.targets[self.index[j]] for j in top]
            events.append(AlertEvent("multivariate", "*", True, t2, self.threshold, self.first, ts,
                                     list(self.contributors)))
        elif self.open and self.calm >= self.clear_after:
            self.open = False
            events.append(AlertEvent("multivariate", "*", False, t2, self.threshold, self.first, ts,
                                     list(self.contributors)))
