"""`input_level`: a boundary signal (an input of the twin) whose level has moved away from where it was in
normal operation, while each reading may still be inside the range the twin has seen (`envelope` watches
that). A manipulated input that creeps away because a controller compensates a fault (fouling, a leak, a
worn valve) shows here while the targets it controls stay in band; so does a plant run for long where
the twin saw it only briefly.

The detector is the targets' `drift` on the input's standardised reading: its EWMA (with the
calibration's weight) against a threshold calibrated on the training inputs the same way, so a plant
whose inputs wandered in training gets a wide limit and one held steady a tight one. Like a target's
residual, the level follows slow normal change (models.twin.monitor.residual.Baseline, the calibration's
half-life, only while the input is calm): a move faster than that alarms, and an input that has settled
somewhere new stays flagged until it returns or an operator accepts the new normal
(models.twin.monitor.recalibration.rebaselined). Calibration: models.twin.monitor.calibrate.input_levels."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.calibration import InputLevel
from models.twin.monitor.residual import Baseline, Drift, baseline_step, drift_quiet, drift_step

CLIP_THRESHOLDS = 2.0  # a standardised reading counts at most this many thresholds (one wild reading cannot alarm)


class InputLevels(Drift):
    """Per watched boundary signal: the drift EWMA of (reading - normal mean) / normal spread, less the slow
    change followed (`halflife` in samples; None: none). `columns`: each signal's place in the monitor's
    input vector, `offset`: where the monitor numbers its inputs (after its targets)."""

    STATE = Drift.STATE + ("followed",)

    def __init__(self, levels: list[InputLevel], columns: np.ndarray, offset: int, halflife: float | None):
        self.mean = np.array([level.mean for level in levels], dtype=np.float64)
        self.std = np.array([level.std for level in levels], dtype=np.float64)
        self.columns = np.asarray(columns, dtype=np.int64)
        clip = CLIP_THRESHOLDS * np.array([level.drift_threshold for level in levels], dtype=np.float64)
        super().__init__(levels, clip, kind="input_level", signals=offset + self.columns)
        self.baseline = Baseline(len(levels), halflife, clip)
        self.followed = self.baseline.level  # in spreads, saved with the state
        n = len(levels)
        self._z, self._present, self._quiet = np.zeros(n), np.zeros(n, np.bool_), np.zeros(n, np.bool_)  # reused

    def arrays(self) -> tuple:
        return (self.mean, self.std, self.columns, self._z, self._present, self._quiet, self.baseline.arrays(),
                super().arrays())


@njit(cache=True, nogil=True)
def input_level_step(part, x, row, sample, events) -> None:
    """One sample of InputLevels; x: the monitor's input vector of the sample (NaN: no reading, held)."""
    mean, std, columns, z, present, quiet, baseline, drift = part
    followed = baseline[2]
    for b in range(len(mean)):
        value = x[columns[b]]
        present[b] = quiet[b] = not np.isnan(value)
        z[b] = (value - mean[b]) / std[b] - followed[b] if present[b] else 0.0
    drift_quiet(drift, quiet)
    baseline_step(baseline, z, quiet)
    drift_step(drift, z, present, row, sample, events)
