"""Calibrating the residual monitor (models.monitor) from an ensemble's validation residuals.

Training calls `calibrate` on the validation split; an existing ensemble can be (re)calibrated from any
CSV of normal operation:

    python -m models.monitor_calibration --ensemble data/model_repository/Ensemble_X --csv normal.csv

Thresholds are set `margin` times above the largest detector statistic seen on the normal data, so
on data like it the monitor stays silent (measured in bench/alert_detection.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.dataset import load_csv
from models.ensemble import MANIFEST_FILE, Ensemble
from models.monitor import AlertThresholds, MonitorCalibration, SignalCalibration

LAG_GRID = np.round(np.arange(0.0, 0.96, 0.05), 2)
DEFAULT_MARGIN = 1.25
DEFAULT_DRIFT_LAMBDA = 0.05


def first_order_lag(values: np.ndarray, lag: np.ndarray | float) -> np.ndarray:
    """y[t] = lag * y[t-1] + (1 - lag) * x[t], starting at x[0]; values [n, k], lag scalar or [k]."""
    out = np.empty_like(values, dtype=np.float64)
    state = values[0].astype(np.float64)
    for i, row in enumerate(values):
        state = lag * state + (1.0 - lag) * row
        out[i] = state
    return out


def ewma(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponentially weighted moving average from 0, as the live drift detector computes it."""
    out = np.empty_like(values, dtype=np.float64)
    state = np.zeros(values.shape[1:])
    for i, row in enumerate(values):
        state = state + weight * (row - state)
        out[i] = state
    return out


def calibrate(targets: list[str], predictions: np.ndarray, actual: np.ndarray, margin: float = DEFAULT_MARGIN,
              drift_lambda: float = DEFAULT_DRIFT_LAMBDA) -> MonitorCalibration:
    """Fit lag, residual scale and thresholds per target from time-ordered normal data [n, n_target]."""
    if len(predictions) < 100:
        raise ValueError(f"{len(predictions)} samples are too few to calibrate the monitor (need >= 100)")
    lagged = {lag: first_order_lag(predictions, lag) for lag in LAG_GRID}
    variance = np.stack([(actual - lagged[lag]).var(axis=0) for lag in LAG_GRID])  # [grid, n_target]
    best = LAG_GRID[variance.argmin(axis=0)]
    residual = actual - first_order_lag(predictions, best)
    mean, std = residual.mean(axis=0), np.maximum(residual.std(axis=0), 1e-12)
    z = (residual - mean) / std
    spike = margin * np.abs(z).max(axis=0)
    drift = margin * np.abs(ewma(z, drift_lambda)).max(axis=0)
    step_std = np.diff(actual, axis=0).std(axis=0)
    return MonitorCalibration(
        signals={t: SignalCalibration(lag=float(best[j]), residual_mean=float(mean[j]), residual_std=float(std[j]),
                                      step_std=float(step_std[j])) for j, t in enumerate(targets)},
        thresholds={t: AlertThresholds(drift_lambda=drift_lambda, drift_threshold=float(drift[j]),
                                       spike_threshold=float(spike[j])) for j, t in enumerate(targets)},
        validation_samples=len(predictions), threshold_margin=margin,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibrate an ensemble's residual monitor from normal data.")
    parser.add_argument("--ensemble", type=Path, required=True, help="ensemble folder")
    parser.add_argument("--csv", type=Path, required=True, help="normal operation with boundary and target columns")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--drift-lambda", type=float, default=DEFAULT_DRIFT_LAMBDA)
    args = parser.parse_args()
    ensemble = Ensemble(args.ensemble)
    manifest = ensemble.manifest
    table = load_csv(args.csv, manifest.boundary_signals, manifest.target_signals)
    manifest.monitor = calibrate(manifest.target_signals, ensemble.predict(table.boundary), table.target,
                                 args.margin, args.drift_lambda)
    (args.ensemble / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    for t, th in manifest.monitor.thresholds.items():
        print(f"  {t:28s} lag {manifest.monitor.signals[t].lag:.2f}  drift > {th.drift_threshold:.2f}  "
              f"spike > {th.spike_threshold:.2f}")


if __name__ == "__main__":
    main()
