"""Residual monitoring: the gap between the twin's predictions and the measured target sensors, turned
into alerts with hysteresis.

The measured sensor is taken to follow the twin's steady-state prediction through a first-order lag
(`SignalCalibration.lag`, fitted per target at training time), so the monitored residual is
`measured - lagged prediction`, standardised with the validation residuals' mean and standard deviation.
A target the twin predicts too little of (`follows_twin` false) is watched against its normal level
instead: a twin without skill only adds its own errors, and extrapolates wildly when its inputs leave
their range.

Each detector family is a part with its own state (models.twin.monitor.reading: missing, stuck;
.residual: spike, drift; .multivariate). While a signal is missing, stuck or suspect of it, its spike and
drift detectors hold still, so one fault raises one alert kind. Thresholds come from the ensemble's
manifest (models.twin.monitor.calibrate) and a session may override them; alarm-flood protection
(models.twin.monitor.flood) filters what is reported.
"""

from __future__ import annotations

import numpy as np

from models.twin.monitor.calibration import AlertThresholds, MonitorCalibration
from models.twin.monitor.events import AlertEvent
from models.twin.monitor.flood import AlarmFlood
from models.twin.monitor.multivariate import MultivariateDrift
from models.twin.monitor.reading import MissingReadings, StuckReadings
from models.twin.monitor.residual import Baseline, Drift, LaggedPrediction, Spikes


class ResidualMonitor:
    """Live detectors for one session: feed predictions and measurements in sample order."""

    def __init__(self, targets: list[str], calibration: MonitorCalibration,
                 overrides: dict[str, AlertThresholds] | None = None, flood: AlarmFlood | None = None):
        self.targets = list(targets)
        self.flood = flood
        signals = [calibration.signals[t] for t in self.targets]
        self.thresholds = {t: (overrides or {}).get(t) or calibration.thresholds[t] for t in self.targets}
        th = [self.thresholds[t] for t in self.targets]
        self._mean = np.array([s.residual_mean for s in signals])
        self._std = np.array([s.residual_std for s in signals])
        clip = np.array([t.spike_threshold + t.drift_threshold for t in th])  # an outlier's most weight
        self.prediction = LaggedPrediction(np.array([s.lag for s in signals]),
                                           np.array([s.follows_twin for s in signals]))
        self.missing = MissingReadings(self.targets, th)
        self.stuck = StuckReadings(self.targets, signals, th)
        self.baseline = Baseline(len(self.targets), calibration.baseline_halflife, clip)
        self.spikes = Spikes(self.targets, th)
        self.drift = Drift(self.targets, th, clip)
        clear_after = int(np.median(self.drift.clear_after)) if self.targets else 1
        vector = calibration.multivariate
        self.multivariate = MultivariateDrift(self.targets, vector, clear_after) if vector is not None else None

    @property
    def open_alerts(self) -> list[tuple[str, str]]:
        """(signal, kind) of every alert open now ("*" for the residual vector), flood or not."""
        per_signal = [(self.targets[j], part.alerts.kind)
                      for part in (self.drift, self.spikes, self.stuck, self.missing)
                      for j in np.flatnonzero(part.alerts.open)]
        return per_signal + ([("*", "multivariate")] if self._vector_open else [])

    @property
    def _vector_open(self) -> bool:
        return self.multivariate is not None and self.multivariate.open

    def update(self, predictions: np.ndarray, actual: np.ndarray, timestamps: list[str]) -> list[AlertEvent]:
        """predictions and actual [n, n_target] (actual NaN where not measured), one timestamp per row;
        the events that reach the operator (after flood protection, if any)."""
        events: list[AlertEvent] = []
        for p, y, ts in zip(predictions, actual, timestamps):
            step: list[AlertEvent] = []
            self._step(p, y, ts, step)
            events.extend(self.flood.filter(step, ts) if self.flood is not None else step)
        return events

    def _step(self, p: np.ndarray, y: np.ndarray, ts: str, events: list[AlertEvent]) -> None:
        lagged = self.prediction.update(p)
        present = ~np.isnan(y)
        self.missing.update(present, ts, events)
        self.stuck.update(y, present, ts, events)
        active = present & self.stuck.trusted()
        z = np.where(active, (y - lagged - self._mean) / self._std - self.baseline.level, 0.0)
        self.baseline.update(z, active & ~self._vector_open & self.drift.quiet())
        self.spikes.update(z, active, ts, events)
        self.drift.update(z, active, ts, events)
        if self.multivariate is not None:
            self.multivariate.update(self.drift.ewma, ts, events)
