"""Detectors of the standardised residual (the reading against the twin, or against its normal level):
`spike` (an isolated outlier) and `drift` (a sustained shift), and the slow baseline that follows normal
change where nothing alarms."""

from __future__ import annotations

import numpy as np

from models.twin.monitor.alerts import SignalAlerts
from models.twin.monitor.calibration import AlertThresholds
from models.twin.monitor.events import AlertEvent


class LaggedPrediction:
    """The twin's steady-state prediction passed through each sensor's first-order lag; a target the twin
    does not explain well enough (`follows_twin` false) is compared with 0, its normal level being the
    calibrated residual mean."""

    def __init__(self, lag: np.ndarray, follows_twin: np.ndarray):
        self.lag, self.follows_twin = lag, follows_twin
        self.value = np.full(len(lag), np.nan)

    def update(self, prediction: np.ndarray) -> np.ndarray:
        p = np.where(self.follows_twin, prediction, 0.0)
        self.value = np.where(np.isnan(self.value), p, self.lag * self.value + (1.0 - self.lag) * p)
        return self.value


class Baseline:
    """Slow normal change of each standardised residual (an exponential follower with the calibration's
    `baseline_halflife` in samples), followed only where nothing alarms; zero when there is no half-life."""

    def __init__(self, n: int, halflife: float | None, clip: np.ndarray):
        self.rate = 0.0 if halflife is None else 1.0 - 0.5 ** (1.0 / halflife)
        self.clip = clip
        self.level = np.zeros(n)

    def update(self, z: np.ndarray, quiet: np.ndarray) -> None:
        if self.rate:
            self.level = np.where(quiet, self.level + self.rate * np.clip(z, -self.clip, self.clip), self.level)


class Spikes:
    """`spike`: one standardised residual beyond +-spike_threshold with its neighbours under half of it
    (reported one sample later); clears after `clear_samples` quiet samples."""

    def __init__(self, targets: list[str], thresholds: list[AlertThresholds]):
        n = len(targets)
        self.threshold = np.array([t.spike_threshold for t in thresholds])
        self.clear_after = np.array([t.clear_samples for t in thresholds])
        self.z_before2, self.z_before = np.zeros(n), np.zeros(n)  # the last two standardised residuals
        self.active_before, self.ts_before = np.zeros(n, dtype=bool), ""
        self.quiet = np.zeros(n, dtype=int)  # samples since the last spike
        self.alerts = SignalAlerts("spike", targets)

    def update(self, z: np.ndarray, active: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        calm = self.threshold / 2
        spiked = (active & self.active_before & (np.abs(self.z_before) > self.threshold) & (np.abs(z) < calm)
                  & (np.abs(self.z_before2) < calm))
        self.quiet = np.where(spiked, 0, self.quiet + active)
        self.alerts.began[spiked] = self.ts_before
        self.alerts.switch(spiked, self.quiet >= self.clear_after, np.abs(self.z_before), self.threshold, ts, events)
        self.z_before2, self.z_before, self.active_before, self.ts_before = self.z_before, z, active, ts


class Drift:
    """`drift`: the EWMA of the standardised residual beyond +-drift_threshold; clears when it has stayed
    under half the threshold for `clear_samples` samples (an off-delay against chattering, ISA-18.2).
    Residuals are clipped first, so one outlier alone cannot drag the EWMA."""

    def __init__(self, targets: list[str], thresholds: list[AlertThresholds], clip: np.ndarray):
        n = len(targets)
        self.weight = np.array([t.drift_lambda for t in thresholds])
        self.threshold = np.array([t.drift_threshold for t in thresholds])
        self.clear_after = np.array([t.clear_samples for t in thresholds])
        self.clip = clip
        self.ewma = np.zeros(n)
        self.calm = np.zeros(n, dtype=int)  # samples in a row with the EWMA under half its threshold
        self.alerts = SignalAlerts("drift", targets)

    def quiet(self) -> np.ndarray:
        """Per signal: no drift alert open and the EWMA under half its threshold."""
        return ~self.alerts.open & (np.abs(self.ewma) < self.threshold / 2)

    def update(self, z: np.ndarray, active: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        clipped = np.clip(z, -self.clip, self.clip)
        self.ewma = np.where(active, self.ewma + self.weight * (clipped - self.ewma), self.ewma)
        level = np.abs(self.ewma)
        calm = level < self.threshold / 2
        self.calm = np.where(calm, self.calm + 1, 0)
        began = self.alerts.began
        began[calm] = ""
        began[~calm & (began == "")] = ts
        self.alerts.switch(level > self.threshold, self.calm >= self.clear_after, level, self.threshold, ts, events)
