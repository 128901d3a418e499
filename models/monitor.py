"""Residual monitoring: the gap between the twin's predictions and the measured target sensors, turned
into alerts with hysteresis.

The measured sensor is taken to follow the twin's steady-state prediction through a first-order lag
(`SignalCalibration.lag`, fitted per target at training time), so the monitored residual is
`measured - lagged prediction`, standardised with the validation residuals' mean and standard deviation.
A target the twin predicts too little of (`follows_twin` false: out of fold it explained less than half
the reading's variance, or not significantly) is watched against its normal level instead: a twin
without skill only adds its own errors, and extrapolates wildly when its inputs leave their range.
Per target signal:

    drift    EWMA of the standardised residual beyond +-drift_threshold; clears when it has stayed
             under half the threshold for `clear_samples` samples (an off-delay against chattering)
    spike    an isolated outlier: one standardised residual beyond +-spike_threshold with its neighbours
             under half of it (reported one sample later); clears after `clear_samples` quiet samples
    stuck    the measured value moved less than stuck_ratio * step_std for `stuck_samples` samples in a
             row (the twin expects it to move); clears at the first real change
    missing  no measured value for `missing_samples` samples in a row (once the signal has been seen);
             clears when a value arrives

For the residual vector as a whole (when the calibration has one, two or more targets):

    multivariate  Hotelling T² of the drift EWMAs with the calibrated precision matrix beyond its
                  threshold; clears after `clear_samples` (the targets' median) samples under half.
                  Real faults move several residuals together, each
                  too little for its own drift alert. It names the signals contributing most: those
                  whose removal would lower T² most.

While a signal is missing or stuck - or has repeated its reading more often than it does in normal
operation (`SignalCalibration.hold_samples`; at least `SUSPECT_STUCK` times), a stuck sensor not yet
confirmed - its drift and spike detectors hold still, so one fault raises one alert kind (a frozen
reading drifts away from the twin faster than `stuck_samples` confirm it). Analysers that sample and hold
are calibrated with their normal hold, so neither `stuck` nor this pause mistakes it for a fault.
Thresholds come from the ensemble's manifest (see models.monitor_calibration) and a session may
override them; alarm-flood protection (models.alarm_flood) filters what is reported.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.alarm_flood import AlarmFlood
from models.monitor_events import SIGNAL_KINDS, AlertEvent

SUSPECT_STUCK = 2  # repeats of the same reading after which drift and spike wait for the stuck detector


class SignalCalibration(BaseModel):
    """How one target's residual behaves on normal (validation) data."""

    lag: float = Field(ge=0.0, lt=1.0)  # first-order lag coefficient of the sensor behind the prediction
    residual_mean: float
    residual_std: float = Field(gt=0.0)
    step_std: float = Field(ge=0.0)  # std of the measured value's sample-to-sample change
    hold_samples: int = Field(1, ge=1)  # most consecutive samples with the same reading in normal operation
    # False: out of fold the twin explained too little of this target (models.monitor_calibration.twin_has_skill),
    # so the reading is watched against its normal level (residual_mean) and the prediction is not used
    follows_twin: bool = True


class AlertThresholds(BaseModel):
    """Detector settings of one target signal; every field may be overridden by a session's `config`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    drift_lambda: float = Field(0.05, gt=0.0, le=1.0)
    drift_threshold: float = Field(gt=0.0)
    spike_threshold: float = Field(gt=0.0)
    stuck_samples: int = Field(10, ge=2, le=1_000_000)
    stuck_ratio: float = Field(0.01, ge=0.0, le=1.0)
    missing_samples: int = Field(5, ge=1, le=1_000_000)
    clear_samples: int = Field(60, ge=1, le=1_000_000)  # the off-delay; calibration sets 3 / drift_lambda


class MultivariateCalibration(BaseModel):
    """The residual vector's normal spread: T² = e' P e of the drift EWMAs e of `signals`, alert beyond
    `threshold`."""

    signals: list[str]  # the targets in the statistic (those with enough calibration data), in P's order
    precision: list[list[float]]  # inverse of the shrunk covariance of the EWMA vector on normal data
    threshold: float = Field(gt=0.0)
    shrinkage: float  # weight of the covariance's diagonal in the shrunk estimate
    effective_samples: float  # the calibration run's worth in independent samples


class MonitorCalibration(BaseModel):
    """Per-target residual calibration and default alert thresholds, stored in the ensemble manifest."""

    signals: dict[str, SignalCalibration]
    thresholds: dict[str, AlertThresholds]
    validation_samples: int
    threshold_margin: float
    alarm_budget: float = 0.0  # calibration alarms per 10k samples allowed to each detector
    multivariate: MultivariateCalibration | None = None  # None: single target, or calibrated before it existed
    baseline_halflife: float | None = None  # samples; None: residual means fixed at calibration (see ResidualMonitor)


class ResidualMonitor:
    """Live detectors for one session: feed predictions and measurements in sample order."""

    def __init__(self, targets: list[str], calibration: MonitorCalibration,
                 overrides: dict[str, AlertThresholds] | None = None, flood: AlarmFlood | None = None):
        self.targets = list(targets)
        self.flood = flood
        signals = [calibration.signals[t] for t in self.targets]
        self.thresholds = {t: (overrides or {}).get(t) or calibration.thresholds[t] for t in self.targets}
        th = [self.thresholds[t] for t in self.targets]
        self._lag = np.array([s.lag for s in signals])
        self._follows_twin = np.array([s.follows_twin for s in signals])
        self._mean = np.array([s.residual_mean for s in signals])
        self._std = np.array([s.residual_std for s in signals])
        self._still = np.array([s.step_std * t.stuck_ratio for s, t in zip(signals, th)])
        self._lambda = np.array([t.drift_lambda for t in th])
        self._drift_th = np.array([t.drift_threshold for t in th])
        self._spike_th = np.array([t.spike_threshold for t in th])
        self._clip = self._spike_th + self._drift_th  # one outlier moves the EWMA by at most lambda * this
        self._stuck_n = np.array([t.stuck_samples for t in th])
        self._suspect_n = np.array([max(SUSPECT_STUCK, s.hold_samples + 1) for s in signals])
        self._missing_n = np.array([t.missing_samples for t in th])
        self._clear_n = np.array([t.clear_samples for t in th])
        n = len(self.targets)
        self._lagged = np.full(n, np.nan)
        self._ewma = np.zeros(n)
        self._last = np.full(n, np.nan)
        self._seen = np.zeros(n, dtype=bool)
        self._still_count = np.zeros(n, dtype=int)
        self._missing_count = np.zeros(n, dtype=int)
        self._quiet_count = np.zeros(n, dtype=int)
        self._calm_count = np.zeros(n, dtype=int)  # samples in a row with the drift EWMA under half its threshold
        self._z_before2, self._z_before = np.zeros(n), np.zeros(n)  # the last two standardised residuals
        halflife = calibration.baseline_halflife
        self._follow = 0.0 if halflife is None else 1.0 - 0.5 ** (1.0 / halflife)
        self._baseline = np.zeros(n)  # slow normal change of each standardised residual (baseline_halflife)
        self._active_before, self._ts_before = np.zeros(n, dtype=bool), ""
        # where each condition began (timestamps), and which alerts are open, per kind
        self._began = {k: np.full(n, "", dtype=object) for k in SIGNAL_KINDS}
        self._first = {k: np.full(n, "", dtype=object) for k in SIGNAL_KINDS}
        self._open = {k: np.zeros(n, dtype=bool) for k in SIGNAL_KINDS}
        vector = calibration.multivariate
        self._precision = np.array(vector.precision) if vector is not None else None
        self._vector_index = np.array([self.targets.index(s) for s in vector.signals]) if vector is not None else None
        self._t2_threshold = vector.threshold if vector is not None else np.inf
        self._vector_open, self._vector_began, self._vector_first = False, "", ""
        self._vector_calm, self._vector_clear_n = 0, int(np.median(self._clear_n)) if n else 1
        self._vector_contributors: list[str] = []

    @property
    def open_alerts(self) -> list[tuple[str, str]]:
        """(signal, kind) of every alert open now ("*" for the residual vector), flood or not."""
        per_signal = [(self.targets[j], k) for k in SIGNAL_KINDS for j in np.flatnonzero(self._open[k])]
        return per_signal + ([("*", "multivariate")] if self._vector_open else [])

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
        p = np.where(self._follows_twin, p, 0.0)
        self._lagged = np.where(np.isnan(self._lagged), p, self._lag * self._lagged + (1.0 - self._lag) * p)
        present = ~np.isnan(y)
        self._seen |= present
        self._missing_count = np.where(present, 0, self._missing_count + self._seen)
        self._began["missing"][self._missing_count == 1] = ts
        self._switch(events, "missing", self._missing_count >= self._missing_n, present, self._missing_count,
                     self._missing_n, ts)

        moved = present & ~(np.abs(y - self._last) <= self._still)  # a first reading counts as a move
        self._still_count = np.where(moved, 0, self._still_count + present)
        self._last = np.where(present, y, self._last)
        self._began["stuck"][moved] = ts
        self._switch(events, "stuck", self._still_count >= self._stuck_n, moved, self._still_count, self._stuck_n, ts)

        active = present & ~self._open["stuck"] & (self._still_count < self._suspect_n)
        z = np.where(active, (y - self._lagged - self._mean) / self._std - self._baseline, 0.0)
        if self._follow:  # follow slow normal change only where nothing is alarming
            quiet = active & ~self._vector_open & ~self._open["drift"] & (np.abs(self._ewma) < self._drift_th / 2)
            self._baseline = np.where(quiet, self._baseline + self._follow * np.clip(z, -self._clip, self._clip),
                                      self._baseline)
        # a spike is an isolated outlier: the previous sample beyond the threshold, the ones around it under half
        calm = self._spike_th / 2
        spiked = (active & self._active_before & (np.abs(self._z_before) > self._spike_th) & (np.abs(z) < calm)
                  & (np.abs(self._z_before2) < calm))
        self._quiet_count = np.where(spiked, 0, self._quiet_count + active)
        self._began["spike"][spiked] = self._ts_before
        self._switch(events, "spike", spiked, self._quiet_count >= self._clear_n, np.abs(self._z_before),
                     self._spike_th, ts)
        self._z_before2, self._z_before, self._active_before, self._ts_before = self._z_before, z, active, ts

        clipped = np.clip(z, -self._clip, self._clip)  # one spike alone must not drag the EWMA
        self._ewma = np.where(active, self._ewma + self._lambda * (clipped - self._ewma), self._ewma)
        level = np.abs(self._ewma)
        calm = level < self._drift_th / 2
        self._calm_count = np.where(calm, self._calm_count + 1, 0)
        self._began["drift"][calm] = ""
        self._began["drift"][~calm & (self._began["drift"] == "")] = ts
        # off-delay (ISA-18.2): a drift clears only after `clear_samples` calm samples, so it does not chatter
        self._switch(events, "drift", level > self._drift_th, self._calm_count >= self._clear_n, level,
                     self._drift_th, ts)
        if self._precision is not None:
            self._vector_step(ts, events)

    def _vector_step(self, ts: str, events: list[AlertEvent]) -> None:
        """The multivariate alert on T² of the drift EWMAs, with the same half-threshold hysteresis."""
        e = self._ewma[self._vector_index]
        pulled = self._precision @ e
        t2 = float(e @ pulled)
        threshold = self._t2_threshold
        calm = t2 < threshold / 2
        self._vector_calm = self._vector_calm + 1 if calm else 0
        if calm:
            self._vector_began = ""
        elif not self._vector_began:
            self._vector_began = ts
        if not self._vector_open and t2 > threshold:
            # how much T² would drop without each signal: (P e)_j² / P_jj
            share = pulled ** 2 / np.diag(self._precision)
            top = [j for j in np.argsort(-share)[:3] if share[j] > 0]
            self._vector_open, self._vector_first = True, self._vector_began or ts
            self._vector_contributors = [self.targets[self._vector_index[j]] for j in top]
            events.append(AlertEvent("multivariate", "*", True, t2, threshold, self._vector_first, ts,
                                     list(self._vector_contributors)))
        elif self._vector_open and self._vector_calm >= self._vector_clear_n:
            self._vector_open = False
            events.append(AlertEvent("multivariate", "*", False, t2, threshold, self._vector_first, ts,
                                     list(self._vector_contributors)))

    def _switch(self, events: list[AlertEvent], kind: str, trigger: np.ndarray, clear: np.ndarray,
                score: np.ndarray, threshold: np.ndarray, ts: str) -> None:
        """Open `kind` where `trigger` holds and it is closed; close it where `clear` holds and it is open."""
        is_open = self._open[kind]
        opening, closing = trigger & ~is_open, clear & is_open
        if not (opening.any() or closing.any()):
            return
        for j in np.flatnonzero(opening | closing):
            opened = bool(opening[j])
            if opened:
                self._first[kind][j] = self._began[kind][j] or ts
            events.append(AlertEvent(kind, self.targets[j], opened, float(score[j]), float(threshold[j]),
                                     self._first[kind][j], ts, [self.targets[j]]))
        is_open[opening] = True
        is_open[closing] = False
