"""Calibrating the residual monitor (models.monitor) from an ensemble's validation residuals.

Training calls `calibrate` on the validation split; an existing ensemble can be (re)calibrated from any
CSV of normal operation:

    python -m models.monitor_calibration --ensemble data/model_repository/Ensemble_X --csv normal.csv

Thresholds are set `margin` times above the level each detector reaches on the normal data, allowing a
small alarm budget so that a few rare twin errors in a long calibration run do not set it alone
(false alarms and detection delays are measured in bench/alert_detection.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.dataset import load_csv
from models.ensemble import MANIFEST_FILE, Ensemble
from models.monitor import AlertThresholds, MonitorCalibration, SignalCalibration
from models.sensor_lag import first_order_lag, fitted_lags

DEFAULT_MARGIN = 1.1  # over the calibration level; the demo twin: 0.05 false alarms / 10k on unseen normal data
#                       (bench.alert_detection, 200,000 samples)
DEFAULT_DRIFT_LAMBDA = 0.05
DEFAULT_ALARM_BUDGET = 0.1  # alarms per 10,000 calibration samples each detector of each target may raise
MIN_SPIKE_SD = 5.0  # a spike threshold never goes below this many residual standard deviations (before the margin)


def ewma(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponentially weighted moving average from 0, as the live drift detector computes it."""
    out = np.empty_like(values, dtype=np.float64)
    state = np.zeros(values.shape[1:])
    for i, row in enumerate(values):
        state = state + weight * (row - state)
        out[i] = state
    return out


def drift_alarms(level: np.ndarray, threshold: float) -> int:
    """How many drift alarms a |EWMA| series [n] opens: above `threshold`, cleared under half of it."""
    state = np.where(level > threshold, 1, np.where(level < threshold / 2, -1, 0))
    changes = state[state != 0]
    if len(changes) == 0:
        return 0
    return int(((changes[1:] == 1) & (changes[:-1] == -1)).sum() + (changes[0] == 1))


def spike_alarms(size: np.ndarray, threshold: float) -> int:
    """How many isolated spikes a |z| series [n] holds: above `threshold`, both neighbours under half."""
    calm = size < threshold / 2
    return int(((size[1:-1] > threshold) & calm[:-2] & calm[2:]).sum())


def lowest_threshold(alarms, statistic: np.ndarray, allowed: int) -> float:
    """The lowest threshold (to 0.1%) at which `alarms(statistic, threshold)` stays within `allowed`."""
    low, high = 0.0, float(statistic.max()) * 1.001 + 1e-12
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if alarms(statistic, middle) <= allowed else (middle, high)
    return high


MIN_CALIBRATION_SAMPLES = 100


def calibrate(targets: list[str], predictions: np.ndarray, actual: np.ndarray, margin: float = DEFAULT_MARGIN,
              drift_lambda: float = DEFAULT_DRIFT_LAMBDA, lags: np.ndarray | None = None,
              alarm_budget: float = DEFAULT_ALARM_BUDGET) -> MonitorCalibration:
    """Residual scale and thresholds per target from time-ordered normal data [n, n_target].

    Each threshold is `margin` times the lowest level at which its detector raises at most `alarm_budget`
    alarms per 10,000 of these samples (with little data: none at all). A twin's rare large errors then
    set no threshold alone. `lags`: the sensor lag per target learned in training; None fits them here.
    """
    if len(predictions) < MIN_CALIBRATION_SAMPLES:
        raise ValueError(f"{len(predictions)} samples are too few to calibrate the monitor "
                         f"(need >= {MIN_CALIBRATION_SAMPLES})")
    best = fitted_lags(predictions, actual) if lags is None else np.asarray(lags, dtype=np.float64)
    residual = actual - first_order_lag(predictions, best)
    mean, std = residual.mean(axis=0), np.maximum(residual.std(axis=0), 1e-12)
    z = (residual - mean) / std
    allowed = int(alarm_budget * len(z) / 10_000)
    level = np.abs(ewma(z, drift_lambda))
    spike = [margin * max(MIN_SPIKE_SD, lowest_threshold(spike_alarms, np.abs(z[:, j]), allowed))
             for j in range(len(targets))]
    drift = [margin * lowest_threshold(drift_alarms, level[:, j], allowed) for j in range(len(targets))]
    step_std = np.diff(actual, axis=0).std(axis=0)
    return MonitorCalibration(
        signals={t: SignalCalibration(lag=float(best[j]), residual_mean=float(mean[j]), residual_std=float(std[j]),
                                      step_std=float(step_std[j])) for j, t in enumerate(targets)},
        thresholds={t: AlertThresholds(drift_lambda=drift_lambda, drift_threshold=float(drift[j]),
                                       spike_threshold=float(spike[j])) for j, t in enumerate(targets)},
        validation_samples=len(predictions), threshold_margin=margin, alarm_budget=alarm_budget,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibrate an ensemble's residual monitor from normal data.")
    parser.add_argument("--ensemble", type=Path, required=True, help="ensemble folder")
    parser.add_argument("--csv", type=Path, required=True, help="normal operation with boundary and target columns")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--drift-lambda", type=float, default=DEFAULT_DRIFT_LAMBDA)
    parser.add_argument("--alarm-budget", type=float, default=DEFAULT_ALARM_BUDGET,
                        help="calibration alarms per 10,000 samples each detector may raise")
    args = parser.parse_args()
    ensemble = Ensemble(args.ensemble)
    manifest = ensemble.manifest
    table = load_csv(args.csv, manifest.boundary_signals, manifest.target_signals)
    manifest.monitor = calibrate(manifest.target_signals, ensemble.predict(table.boundary), table.target,
                                 args.margin, args.drift_lambda, manifest.lags(), args.alarm_budget)
    (args.ensemble / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    for t, th in manifest.monitor.thresholds.items():
        print(f"  {t:28s} lag {manifest.monitor.signals[t].lag:.2f}  drift > {th.drift_threshold:.2f}  "
              f"spike > {th.spike_threshold:.2f}")


if __name__ == "__main__":
    main()
