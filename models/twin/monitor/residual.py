"""Detectors of the standardised residual (the reading against the twin, or against its normal level):
`spike` (an isolated outlier) and `drift` (a sustained shift), and the slow baseline that follows normal
change where nothing alarms."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.alerts import NO_SAMPLE, SignalAlerts, switch
from models.twin.monitor.calibration import AlertThresholds
from models.twin.monitor.events import KIND_CODE

SPIKE = KIND_CODE["spike"]
# the baseline follows a signal while its drift EWMA is under this share of its threshold: a change slower
# than FOLLOW_SHARE x threshold / (the baseline's memory) is followed as normal, a faster one alarms
FOLLOW_SHARE = 0.75


class LaggedPrediction:
    """The twin's steady-state prediction passed through each sensor's first-order lag; a target the twin
    does not explain well enough (`follows_twin` false) is compared with 0, its normal level being the
    calibrated residual mean."""

    STATE = ("value",)

    def __init__(self, lag: np.ndarray, follows_twin: np.ndarray):
        self.lag, self.follows_twin = lag.astype(np.float64), follows_twin.astype(np.bool_)
        self.value = np.full(len(lag), np.nan)

    def arrays(self) -> tuple:
        return self.lag, self.follows_twin, self.value


@njit(cache=True, nogil=True)
def lag_step(part, prediction) -> None:
    """One sample of LaggedPrediction: `value` follows the prediction."""
    lag, follows_twin, value = part
    for j in range(len(lag)):
        p = prediction[j] if follows_twin[j] else 0.0
        value[j] = p if np.isnan(value[j]) else lag[j] * value[j] + (1.0 - lag[j]) * p


class Baseline:
    """Slow normal change of each standardised residual (an exponential follower with the calibration's
    `baseline_halflife` in samples), followed only where nothing alarms and the drift EWMA is under
    FOLLOW_SHARE of its threshold; zero when there is no half-life. A step passes that share within a
    few samples, so the baseline takes almost none of it; a ramp is followed with a lag of slope x memory
    (halflife / ln 2), so one slower than FOLLOW_SHARE x threshold per memory never alarms."""

    STATE = ("level",)

    def __init__(self, n: int, halflife: float | None, clip: np.ndarray):
        self.rate = 0.0 if halflife is None else 1.0 - 0.5 ** (1.0 / halflife)
        self.clip = clip
        self.level = np.zeros(n)

    def arrays(self) -> tuple:
        return self.rate, self.clip, self.level


@njit(cache=True, nogil=True)
def baseline_step(part, z, quiet) -> None:
    """One sample of Baseline, following z where `quiet`."""
    rate, clip, level = part
    if rate:
        for j in range(len(level)):
            if quiet[j]:
                level[j] = level[j] + rate * min(max(z[j], -clip[j]), clip[j])


class Spikes:
    """`spike`: one standardised residual beyond +-spike_threshold with its neighbours under half of it
    (reported one sample later); clears after `clear_samples` quiet samples."""

    STATE = ("z_before2", "z_before", "active_before", "quiet")

    def __init__(self, thresholds: list[AlertThresholds]):
        n = len(thresholds)
        self.threshold = np.array([t.spike_threshold for t in thresholds], dtype=np.float64)
        self.clear_after = np.array([t.clear_samples for t in thresholds], dtype=np.int64)
        self.z_before2, self.z_before = np.zeros(n), np.zeros(n)  # the last two standardised residuals
        self.active_before = np.zeros(n, dtype=np.bool_)
        self.quiet = np.zeros(n, dtype=np.int64)  # samples since the last spike
        self.alerts = SignalAlerts("spike", n)

    def arrays(self) -> tuple:
        return (self.threshold, self.clear_after, self.z_before2, self.z_before, self.active_before, self.quiet,
                self.alerts.arrays())


@njit(cache=True, nogil=True)
def spike_step(part, z, active, row, sample, events) -> None:
    """One sample of Spikes: the previous sample is a spike when it stood out and both neighbours did not."""
    threshold, clear_after, z_before2, z_before, active_before, quiet, alerts = part
    began = alerts[0]
    for j in range(len(threshold)):
        calm = threshold[j] / 2
        spiked = (active[j] and active_before[j] and abs(z_before[j]) > threshold[j] and abs(z[j]) < calm
                  and abs(z_before2[j]) < calm)
        quiet[j] = 0 if spiked else quiet[j] + active[j]
        if spiked:
            began[j] = sample - 1
        switch(alerts, j, spiked, quiet[j] >= clear_after[j], abs(z_before[j]), threshold[j], SPIKE, row, sample,
               events)
        z_before2[j], z_before[j], active_before[j] = z_before[j], z[j], active[j]


class Drift:
    """`drift`: the EWMA of the standardised residual beyond +-drift_threshold; clears when it has stayed
    under half the threshold for `clear_samples` samples (an off-delay against chattering, ISA-18.2).
    Residuals are clipped first, so one outlier alone cannot drag the EWMA. `settings`: per signal,
    anything with drift_lambda, drift_threshold and clear_samples (AlertThresholds, InputLevel); `kind`
    and `signals` (the monitor's index of each signal; default: the targets) name the events."""

    STATE = ("ewma", "calm")

    def __init__(self, settings: list, clip: np.ndarray, kind: str = "drift", signals: np.ndarray | None = None):
        n = len(settings)
        self.weight = np.array([t.drift_lambda for t in settings], dtype=np.float64)
        self.threshold = np.array([t.drift_threshold for t in settings], dtype=np.float64)
        self.clear_after = np.array([t.clear_samples for t in settings], dtype=np.int64)
        self.clip = clip
        self.kind_code = KIND_CODE[kind]
        self.signals = np.arange(n, dtype=np.int64) if signals is None else np.asarray(signals, dtype=np.int64)
        self.ewma = np.zeros(n)
        self.calm = np.zeros(n, dtype=np.int64)  # samples in a row with the EWMA under half its threshold
        self.alerts = SignalAlerts(kind, n)

    def arrays(self) -> tuple:
        return (self.weight, self.threshold, self.clear_after, self.clip, self.ewma, self.calm, self.alerts.arrays(),
                self.kind_code, self.signals)


@njit(cache=True, nogil=True)
def drift_quiet(part, quiet) -> None:
    """Per signal into `quiet`: no drift alert open and the EWMA under FOLLOW_SHARE of its threshold."""
    threshold, ewma, is_open = part[1], part[4], part[6][2]
    for j in range(len(threshold)):
        quiet[j] = quiet[j] and not is_open[j] and abs(ewma[j]) < threshold[j] * FOLLOW_SHARE


@njit(cache=True, nogil=True)
def drift_step(part, z, active, row, sample, events) -> None:
    """One sample of Drift."""
    weight, threshold, clear_after, clip, ewma, calm_run, alerts, kind, signals = part
    began = alerts[0]
    for j in range(len(weight)):
        if active[j]:
            ewma[j] = ewma[j] + weight[j] * (min(max(z[j], -clip[j]), clip[j]) - ewma[j])
        level = abs(ewma[j])
        calm = level < threshold[j] / 2
        calm_run[j] = calm_run[j] + 1 if calm else 0
        if calm:
            began[j] = NO_SAMPLE
        elif began[j] == NO_SAMPLE:
            began[j] = sample
        switch(alerts, j, level > threshold[j], calm_run[j] >= clear_after[j], level, threshold[j], kind, row,
               sample, events, signals[j])
