"""Sensor lag: measured targets follow the process's steady state through a first-order lag,
y[t] = a * y[t-1] + (1 - a) * p[t], with one coefficient `a` per target.

A twin fitted row by row to lagged readings learns a smeared mix of the process and its sensors, and its
error then wanders with the operating point - the residual monitor cannot tell that from a fault.
Training estimates `a` per target, fits the static twin to the readings with the lag removed (the
steady state), and the monitor (models.twin.monitor.residual_monitor) lags the predictions again
before comparing them with measurements.
"""

from __future__ import annotations

import numpy as np

LAG_GRID = np.round(np.arange(0.0, 0.96, 0.01), 2)


def first_order_lag(values: np.ndarray, lag: np.ndarray | float) -> np.ndarray:
    """y[t] = lag * y[t-1] + (1 - lag) * x[t], starting at x[0]; values [n, k], lag scalar or [k]."""
    out = np.empty_like(values, dtype=np.float64)
    state = values[0].astype(np.float64)
    for i, row in enumerate(values):
        state = lag * state + (1.0 - lag) * row
        out[i] = state
    return out


def remove_lag(values: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """The inverse of first_order_lag: the steady state a lagged series [n, k] followed (noise grows by
    about sqrt(1 + lag²) / (1 - lag))."""
    out = values.astype(np.float64).copy()
    out[1:] = (values[1:] - lag * values[:-1]) / (1.0 - lag)
    return out


def fitted_lags(predictions: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The lag per target (on LAG_GRID) under which steady-state predictions [n, k] best match the
    measurements [n, k]: the one leaving the least residual variance."""
    lag = LAG_GRID[:, None]
    state = np.broadcast_to(predictions[0], (len(LAG_GRID), predictions.shape[1])).astype(np.float64)
    total, squares = np.zeros_like(state), np.zeros_like(state)
    for p, y in zip(predictions, actual):
        state = lag * state + (1.0 - lag) * p
        residual = y - state
        total += residual
        squares += residual * residual
    n = len(predictions)
    return LAG_GRID[(squares / n - (total / n) ** 2).argmin(axis=0)]
