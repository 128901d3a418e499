"""Boundary-input series for monitor tests: stationary inputs with a known level and spread."""

from __future__ import annotations

import numpy as np


def wandering(n: int, seed: int, mean: float = 10.0, sd: float = 1.0) -> np.ndarray:
    """A stationary AR(1) input (correlation time ~20 samples) with this mean and spread."""
    rng = np.random.default_rng(seed)
    a = np.exp(-1 / 20)
    out, level = np.empty(n), 0.0
    for i, shock in enumerate(rng.normal(0.0, sd * np.sqrt(1 - a * a), n)):
        level = a * level + shock
        out[i] = mean + level
    return out


def three_inputs(n: int, seed: int) -> np.ndarray:
    """[n, 3]: wandering inputs at levels 10, 20 and 30 (spread 1), from seeds `seed`, `seed` + 1, `seed` + 2."""
    return np.column_stack([wandering(n, seed + k, mean=10.0 * (k + 1)) for k in range(3)])
