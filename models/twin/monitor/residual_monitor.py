"""Residual monitoring: the gap between the twin's predictions and the measured target sensors, turned
into alerts with hysteresis.

The measured sensor is taken to follow the twin's steady-state prediction through a first-order lag
(`SignalCalibration.lag`, fitted per target at training time), so the monitored residual is
`measured - lagged prediction`, standardised with the validation residuals' mean and standard deviation.
A target the twin predicts too little of (`follows_twin` false) is watched against its normal level
instead: a twin without skill only adds its own errors, and extrapolates wildly when its inputs leave
their range.

Each detector family is a part with its own state (models.twin.monitor.reading: missing, stuck;
.residual: spike, drift; .multivariate; .envelope and .input_level: the boundary inputs against their
training range and their normal level).
While a signal is missing, stuck or suspect of it, its spike and drift detectors hold still, so one
fault raises one alert kind. Thresholds come from the ensemble's
manifest (models.twin.monitor.calibrate) and a session may override them; alarm-flood protection
(models.twin.monitor.flood) filters what is reported.

The detectors are sequential in time (each sample's state depends on the last), so the loop over samples
is compiled with numba and runs without the GIL: a 1,000-row batch costs well under a millisecond. The
whole state can be saved and restored (`state`, `restore`), so a resumed session continues its detectors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.calibration import (
    AlertThresholds,
    InputLevel,
    InputRange,
    MonitorCalibration,
    MultivariateCalibration,
    SignalCalibration,
)
from models.twin.monitor.envelope import InputEnvelope, envelope_step
from models.twin.monitor.events import ALERT_KINDS, INPUT_KINDS, SIGNAL_KINDS, AlertEvent, EventBuffer
from models.twin.monitor.flood import AlarmFlood
from models.twin.monitor.input_level import InputLevels, input_level_step
from models.twin.monitor.multivariate import MultivariateDrift, multivariate_step
from models.twin.monitor.reading import MissingReadings, StuckReadings, missing_step, stuck_step
from models.twin.monitor.residual import (
    Baseline,
    Drift,
    LaggedPrediction,
    Spikes,
    baseline_step,
    drift_quiet,
    drift_step,
    lag_step,
    spike_step,
)

STATE_VERSION = 1  # of what `state` returns


class ResidualMonitor:
    """Live detectors for one session: feed predictions and measurements in sample order."""

    def __init__(self, targets: list[str], calibration: MonitorCalibration,
                 overrides: dict[str, AlertThresholds] | None = None, flood: AlarmFlood | None = None,
                 boundary: list[str] | None = None):
        """`boundary`: the twin's boundary signals in the order `update` gets them; those the calibration
        has a training range for are watched by `envelope`, those it has a normal level for by `input_level`."""
        self.targets = list(targets)
        boundary = self._boundary = list(boundary or [])
        self.inputs = [b for b in boundary if b in calibration.inputs or b in calibration.input_levels]  # watched
        self._input_columns = np.array([boundary.index(b) for b in self.inputs], dtype=np.int64)
        self._names = self.targets + self.inputs  # what an event's signal index names
        self.flood = flood
        signals = [calibration.signals[t] for t in self.targets]
        self.thresholds = {t: (overrides or {}).get(t) or calibration.thresholds[t] for t in self.targets}
        th = [self.thresholds[t] for t in self.targets]
        self._mean = np.array([s.residual_mean for s in signals], dtype=np.float64)
        self._std = np.array([s.residual_std for s in signals], dtype=np.float64)
        clip = np.array([t.spike_threshold + t.drift_threshold for t in th], dtype=np.float64)  # an outlier's most
        self.prediction = LaggedPrediction(np.array([s.lag for s in signals]),
                                           np.array([s.follows_twin for s in signals]))
        self.missing = MissingReadings(th)
        self.stuck = StuckReadings(signals, th)
        self.baseline = Baseline(len(self.targets), calibration.baseline_halflife, clip)
        self.spikes = Spikes(th)
        self.drift = Drift(th, clip)
        clear_after = int(np.median(self.drift.clear_after)) if self.targets else 1
        vector = calibration.multivariate
        self.multivariate = MultivariateDrift(self.targets, vector, clear_after) if vector is not None else None
        ranged = [i for i, b in enumerate(self.inputs) if b in calibration.inputs]
        # both input parts exist even where one watches nothing (no columns), and the compiled loop gets both
        # or (no input watched) neither: four signatures in all, each compiled before serving
        self.envelope = InputEnvelope([calibration.inputs[self.inputs[i]] for i in ranged],
                                      calibration.envelope_margin, clear_after, np.array(ranged, dtype=np.int64),
                                      len(self.targets))
        levelled = [i for i, b in enumerate(self.inputs) if b in calibration.input_levels]
        self.input_level = InputLevels([calibration.input_levels[self.inputs[i]] for i in levelled],
                                       np.array(levelled, dtype=np.int64), len(self.targets),
                                       calibration.baseline_halflife)
        self.samples = 0  # samples seen; the next one's number
        self._stamps: dict[int, str] = {}  # timestamps of earlier samples the state still refers to
        self._state_arrays = (self.prediction.arrays(), self.missing.arrays(), self.stuck.arrays(),
                              self.baseline.arrays(), self.spikes.arrays(), self.drift.arrays(),
                              self.multivariate.arrays() if self.multivariate is not None else None,
                              *((self.envelope.arrays(), self.input_level.arrays()) if self.inputs else (None, None)))
        alerts = [part.alerts for part in (self.missing, self.stuck, self.spikes, self.drift, self.envelope,
                                           self.input_level)]
        self._sample_refs = [a.began for a in alerts] + [a.first for a in alerts] + (
            [self.multivariate.state[1:3]] if self.multivariate is not None else [])  # views, updated in place

    @property
    def open_alerts(self) -> list[tuple[str, str]]:
        """(signal, kind) of every alert open now ("*" for the residual vector), flood or not."""
        return [(signal, kind) for signal, kind, _ in self._open()]

    def _open(self):
        """(signal, kind, sample its condition began) of every alert open now."""
        for part in (self.drift, self.spikes, self.stuck, self.missing):
            for j in np.flatnonzero(part.alerts.open):
                yield self.targets[j], part.alerts.kind, int(part.alerts.first[j])
        for part in (self.envelope, self.input_level):
            for j in np.flatnonzero(part.alerts.open):
                yield self.inputs[part.columns[j]], part.alerts.kind, int(part.alerts.first[j])
        if self._vector_open:
            yield "*", "multivariate", int(self.multivariate.state[2])

    @property
    def _vector_open(self) -> bool:
        return self.multivariate is not None and self.multivariate.open

    def update(self, predictions: np.ndarray, actual: np.ndarray, timestamps: list[str],
               boundary: np.ndarray | None = None) -> list[AlertEvent]:
        """predictions and actual [n, n_target] (actual NaN where not measured), one timestamp per row, and
        the boundary inputs [n, n_boundary] (None: not known); the events that reach the operator (after
        flood protection, if any). Safe to run in a worker thread: the compiled loop releases the GIL."""
        n = len(timestamps)
        inputs = (np.full((n, len(self.inputs)), np.nan) if boundary is None or not len(self.inputs)
                  else np.asarray(boundary, dtype=np.float64)[:, self._input_columns])
        per_sample = len(SIGNAL_KINDS) * len(self.targets) + len(INPUT_KINDS) * len(self.inputs) + 1  # events at most
        events = EventBuffer.empty(n * per_sample)
        _scan(_loop_array(predictions), _loop_array(actual), _loop_array(inputs), self.samples, self._mean, self._std,
              *self._state_arrays, events)
        base, self.samples = self.samples, self.samples + n
        reported = self._events(events, timestamps, base) if events.count[0] or self._flooding else []
        self._keep_stamps(base, timestamps)
        return reported

    @property
    def _flooding(self) -> bool:
        return self.flood is not None and self.flood.flooding

    def _events(self, events: EventBuffer, timestamps: list[str], base: int) -> list[AlertEvent]:
        """The buffer's events as AlertEvents, grouped by row and passed through flood protection."""
        def stamp(sample: int) -> str:
            return timestamps[sample - base] if sample >= base else self._stamps.get(sample, "")

        decoded = [self._event(ints, floats, timestamps, stamp)
                   for ints, floats in zip(events.ints[:events.count[0]].tolist(), events.floats[:events.count[0]])]
        if self.flood is None:
            return decoded
        rows = events.rows()
        reported: list[AlertEvent] = []
        start, row = 0, int(rows[0]) if len(rows) else len(timestamps)
        while row < len(timestamps):  # rows with events; every row while a flood is open, to see it end
            end = start + int(np.searchsorted(rows[start:], row, side="right"))
            reported += self.flood.filter(decoded[start:end], timestamps[row])
            start = end
            row = row + 1 if self.flood.flooding else (int(rows[start]) if start < len(rows) else len(timestamps))
        return reported

    def _event(self, ints: list[int], floats: np.ndarray, timestamps: list[str], stamp) -> AlertEvent:
        row, kind, signal, opened, first, *named = ints
        contributors = [self._names[j] for j in named if j >= 0]
        return AlertEvent(ALERT_KINDS[kind], self._names[signal] if signal >= 0 else "*", bool(opened),
                          float(floats[0]), float(floats[1]), stamp(first), timestamps[row], contributors)

    def _keep_stamps(self, base: int, timestamps: list[str]) -> None:
        """Keep the timestamps of the samples the state refers to (conditions' and open alerts' starts, and
        the last sample); forget the others now and then."""
        referenced = np.concatenate(self._sample_refs)
        for sample in referenced[referenced >= base].tolist():
            self._stamps[sample] = timestamps[sample - base]
        if timestamps:
            self._stamps[self.samples - 1] = timestamps[-1]
        if len(self._stamps) > 2 * len(referenced) + 2:
            keep = set(referenced.tolist()) | {self.samples - 1}
            self._stamps = {s: t for s, t in self._stamps.items() if s in keep}

    def recalibrate(self, calibration: MonitorCalibration, overrides: dict[str, AlertThresholds] | None,
                    timestamp: str) -> list[AlertEvent]:
        """Judge from now on against `calibration` (a new normal an operator accepted, a recalibration, a
        rollback): every open alert clears at `timestamp` (the clearing events are returned; flood
        protection and sample numbering carry on) and the detectors start afresh."""
        cleared = [AlertEvent(kind, signal, False, 0.0, self.multivariate.threshold if signal == "*" else 0.0,
                              self._stamps.get(first, ""), timestamp) for signal, kind, first in self._open()]
        samples, stamps = self.samples, self._stamps
        self.__init__(self.targets, calibration, overrides, self.flood, self._boundary)
        self.samples, self._stamps = samples, stamps
        return cleared

    def _parts(self) -> dict:
        parts = {"prediction": self.prediction, "missing": self.missing, "stuck": self.stuck,
                 "baseline": self.baseline, "spikes": self.spikes, "drift": self.drift}
        watched = {name: part for name, part in (("envelope", self.envelope), ("input_level", self.input_level))
                   if len(part.columns)}
        return parts | ({"multivariate": self.multivariate} if self.multivariate is not None else {}) | watched

    def state(self) -> dict:
        """Everything the detectors hold, as plain lists and numbers (JSON and BSON safe), for `restore`."""
        parts = {}
        for name, part in self._parts().items():
            arrays = {key: getattr(part, key) for key in part.STATE}
            alerts = getattr(part, "alerts", None)
            if alerts is not None:
                arrays |= {f"alerts_{key}": getattr(alerts, key) for key in alerts.STATE}
            parts[name] = {key: value.tolist() for key, value in arrays.items()}
        return {"version": STATE_VERSION, "targets": self.targets, "inputs": self.inputs, "samples": self.samples,
                "stamps": [[s, t] for s, t in self._stamps.items()], "parts": parts,
                "flood": self.flood.state() if self.flood is not None else None}

    def restore(self, state: dict) -> bool:
        """Continue from `state` (what `state` returned, for the same targets); False, changing nothing,
        when it does not fit this monitor (another version, other targets or detectors)."""
        parts = self._parts()
        if (state.get("version") != STATE_VERSION or state.get("targets") != self.targets
                or state.get("inputs", []) != self.inputs or set(state.get("parts", {})) != set(parts)):
            return False
        for name, arrays in state["parts"].items():
            for key, values in arrays.items():
                holder, attribute = (parts[name].alerts, key[7:]) if key.startswith("alerts_") else (parts[name], key)
                current = getattr(holder, attribute)
                current[...] = np.asarray(values, dtype=current.dtype)
        self.samples = int(state["samples"])
        self._stamps = {int(s): str(t) for s, t in state["stamps"]}
        if self.flood is not None and state.get("flood") is not None:
            self.flood.restore(state["flood"])
        return True


def _loop_array(values: np.ndarray) -> np.ndarray:
    """`values` as the compiled loop is compiled for: float64, C order, writable (numba compiles a read-only
    array - one Ray hands over from its object store - as another type: seconds, holding the GIL)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return values if values.flags.writeable else values.copy()


def compile_monitor() -> None:
    """Compile the monitor's loop now rather than on a session's first measured sample (seconds the first
    time; numba keeps the result in __pycache__, so later processes only load it)."""
    targets = ["a", "b"]
    signal = SignalCalibration(lag=0.5, residual_mean=0.0, residual_std=1.0, step_std=1.0)
    thresholds = AlertThresholds(drift_threshold=1.0, spike_threshold=4.0)
    vector = MultivariateCalibration(signals=targets, precision=np.eye(2).tolist(), threshold=10.0, shrinkage=0.0,
                                     effective_samples=10.0)
    level = InputLevel(mean=0.5, std=0.1, drift_lambda=0.1, drift_threshold=3.0, clear_samples=30)
    for multivariate in (None, vector):  # the loop's four signatures: with or without each, inputs watched or not
        for inputs, levels in (({}, {}), ({"u": InputRange(low=0.0, high=1.0)}, {"u": level})):
            calibration = MonitorCalibration(signals=dict.fromkeys(targets, signal),
                                             thresholds=dict.fromkeys(targets, thresholds), validation_samples=10,
                                             threshold_margin=1.0, multivariate=multivariate, inputs=inputs,
                                             input_levels=levels)
            ResidualMonitor(targets, calibration, boundary=["u"]).update(np.zeros((2, 2)), np.ones((2, 2)), ["0", "1"],
                                                                          np.zeros((2, 1)))


@njit(cache=True, nogil=True)
def _scan(predictions, actual, inputs, first_sample, mean, std, prediction, missing, stuck, baseline, spikes, drift,
          vector, envelope, input_level, events) -> None:
    """Every part's update, sample by sample, in the order the detectors depend on each other."""
    n_target = len(mean)
    present = np.empty(n_target, np.bool_)
    trusted = np.empty(n_target, np.bool_)
    active = np.empty(n_target, np.bool_)
    quiet = np.empty(n_target, np.bool_)
    z = np.empty(n_target)
    ewma = drift[4]
    for row in range(len(predictions)):
        sample = first_sample + row
        y = actual[row]
        lag_step(prediction, predictions[row])
        lagged = prediction[2]
        for j in range(n_target):
            present[j] = not np.isnan(y[j])
        missing_step(missing, present, row, sample, events)
        stuck_step(stuck, y, present, trusted, row, sample, events)
        vector_open = False
        if vector is not None:
            vector_open = vector[4][0] != 0
        for j in range(n_target):
            active[j] = present[j] and trusted[j]
            z[j] = (y[j] - lagged[j] - mean[j]) / std[j] - baseline[2][j] if active[j] else 0.0
            quiet[j] = active[j] and not vector_open
        drift_quiet(drift, quiet)
        baseline_step(baseline, z, quiet)
        spike_step(spikes, z, active, row, sample, events)
        drift_step(drift, z, active, row, sample, events)
        if vector is not None:
            multivariate_step(vector, ewma, row, sample, events)
        if envelope is not None:  # both parts or neither (see ResidualMonitor.__init__)
            envelope_step(envelope, inputs[row], row, sample, events)
            input_level_step(input_level, inputs[row], row, sample, events)
