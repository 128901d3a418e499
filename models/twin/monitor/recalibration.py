"""Changing a running monitor's calibration from what it has seen, on an operator's word
(serve_app.twin.operator_routes):

- `rebaselined`: a window of operation accepted as the new normal (the plant settled at a new level);
- `recalibration_proposal`: thresholds recalibrated from the operation during which the monitor, with
  the calibration in force, had no alert open - shown side by side with those in force before anyone
  applies them.
"""

from __future__ import annotations

import numpy as np

from models.twin.monitor.calibrate import calibrate
from models.twin.monitor.calibration import MonitorCalibration
from models.twin.monitor.residual_monitor import ResidualMonitor
from models.twin.sensor_lag import first_order_lag

MIN_ACCEPT_SAMPLES = 30  # measured samples a window needs before it can be accepted as the new normal
PROPOSAL_MIN_SAMPLES = 1000  # alert-free measured samples before a recalibration is proposed


def rebaselined(calibration: MonitorCalibration, targets: list[str], predictions: np.ndarray,
                actual: np.ndarray, inputs: dict[str, np.ndarray] | None = None) -> MonitorCalibration:
    """`calibration` with each target's normal level and spread taken from a window of operation an
    operator accepts as the new normal (predictions, actual [n, n_target], NaN where not measured): the
    residual mean moves to the window's; the spread becomes the window's where it is wider (a calm
    window never makes alerts more sensitive: that is what a recalibration is for). Thresholds are in
    spreads, so they follow. `inputs` (boundary signal -> its readings in the window) moves the normal
    level of each watched input the same way (one with fewer than MIN_ACCEPT_SAMPLES readings in the
    window keeps its level). ValueError when a target has fewer than MIN_ACCEPT_SAMPLES
    measured samples."""
    signals = dict(calibration.signals)
    for j, target in enumerate(targets):
        signal = signals[target]
        lagged = first_order_lag(predictions[:, j:j + 1], signal.lag)[:, 0] if signal.follows_twin else 0.0
        residual = (actual[:, j] - lagged)[np.isfinite(actual[:, j])]
        if len(residual) < MIN_ACCEPT_SAMPLES:
            raise ValueError(f"{target} has {len(residual)} measured samples in the window; at least "
                             f"{MIN_ACCEPT_SAMPLES} are needed")
        signals[target] = signal.model_copy(update={"residual_mean": float(residual.mean()),
                                                    "residual_std": max(signal.residual_std, float(residual.std()))})
    levels = dict(calibration.input_levels)
    for name, values in (inputs or {}).items():
        seen = values[np.isfinite(values)]
        if name in levels and len(seen) >= MIN_ACCEPT_SAMPLES:
            levels[name] = levels[name].model_copy(update={"mean": float(seen.mean()),
                                                           "std": max(levels[name].std, float(seen.std()))})
    return calibration.model_copy(update={"signals": signals, "input_levels": levels})


def alert_free(calibration: MonitorCalibration, targets: list[str], boundary: list[str],
               runs: list[tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]]) -> np.ndarray:
    """Per row of `runs` (consecutive pieces of operation: predictions, actual, timestamps, boundary
    inputs or None), whether every target was measured and a monitor with `calibration` - replayed over
    them from a fresh start - had no alert open. Replaying (rather than reading the alerts raised at the
    time) judges all of it by the calibration now in force."""
    monitor = ResidualMonitor(targets, calibration, boundary=boundary)
    keep = []
    for predictions, actual, timestamps, inputs in runs:
        row = {stamp: i for i, stamp in enumerate(timestamps)}
        flagged = np.zeros(len(timestamps), dtype=bool)
        open_since: dict[tuple[str, str], int] = {(s, k): 0 for s, k in monitor.open_alerts}
        for event in monitor.update(predictions, actual, timestamps, inputs):
            key, at = (event.signal, event.kind), row[event.sample]
            if event.opened:
                open_since[key] = at
            elif key in open_since:
                flagged[open_since.pop(key):at] = True
        for at in open_since.values():
            flagged[at:] = True
        keep.append(~flagged & np.isfinite(actual).all(axis=1))
    return np.concatenate(keep) if keep else np.zeros(0, dtype=bool)


def recalibration_proposal(calibration: MonitorCalibration, targets: list[str], predictions: np.ndarray,
                           actual: np.ndarray) -> tuple[MonitorCalibration, dict]:
    """A calibration from alert-free operation (predictions, actual [n, n_target], n >= PROPOSAL_MIN_SAMPLES)
    with the same margin, alarm budget, lags, baseline, input ranges and input levels as `calibration`, and
    {target: {threshold: {"now", "proposed"}}} for the drift and spike thresholds."""
    if len(predictions) < PROPOSAL_MIN_SAMPLES:
        raise ValueError(f"{len(predictions)} alert-free samples; a proposal needs {PROPOSAL_MIN_SAMPLES}")
    lags = np.array([calibration.signals[t].lag for t in targets])
    proposed = calibrate(targets, predictions, actual, calibration.threshold_margin, lags=lags,
                         alarm_budget=calibration.alarm_budget, baseline_halflife=calibration.baseline_halflife)
    proposed = proposed.model_copy(update={"inputs": calibration.inputs, "envelope_margin": calibration.envelope_margin,
                                           "input_levels": calibration.input_levels})
    compared = {t: {field: {"now": round(getattr(calibration.thresholds[t], field), 4),
                            "proposed": round(getattr(proposed.thresholds[t], field), 4)}
                    for field in ("drift_threshold", "spike_threshold")} for t in targets}
    return proposed, compared
