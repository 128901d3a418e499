"""A trained twin ensemble on disk: its folder layout, manifest and scalers.

An ensemble folder `Ensemble_<model>_<YYYYmmdd_HHMMSS>/` holds:
    manifest.json   signals, boost choice, per-signal metrics, architecture (EnsembleManifest)
    scalers.json    boundary and target StandardScaler
    ensemble.onnx   both stages in one graph: input `boundary` [n, n_boundary] (scaled),
                    outputs `stage1` and `residual` [n, n_target] (scaled); a twin without boundary
                    signals takes the targets' readings instead (NaN where not measured) and predicts
                    each from the others (EnsembleManifest.leave_one_out)
    stage1.pt, boost.pt   PyTorch weights (for fine-tuning and export checks)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from models.twin.monitor.calibration import MonitorCalibration
from models.twin.scaling import StandardScaler

MANIFEST_FILE = "manifest.json"
SCALERS_FILE = "scalers.json"
ONNX_FILE = "ensemble.onnx"


class SignalMetrics(BaseModel):
    """Validation and test R² of one target signal, and whether the ensemble boosts it."""

    r2_stage1: float
    r2_ensemble: float
    delta_r2: float
    boost_used: bool
    test_r2_stage1: float | None = None
    test_r2_ensemble: float | None = None


class EnsembleManifest(BaseModel):
    """Everything needed to serve and describe an ensemble, stored as manifest.json."""

    name: str
    created_at: str
    boundary_signals: list[str]
    target_signals: list[str]
    boost_signals: list[str]  # targets where Stage 2 is used by default
    delta_r2_threshold: float
    metrics: dict[str, SignalMetrics]
    stage1_config: dict
    boost_config: dict
    training: dict = {}
    sensor_lag: dict[str, float] = {}  # learned first-order lag per target (models.twin.sensor_lag); {}: none
    monitor: MonitorCalibration | None = None  # residual monitor calibration (models.twin.monitor.residual_monitor)
    # targets of a leave-one-out twin served by its linear fallback (ridge on the other targets; models.twin.graph)
    linear_signals: list[str] = []

    @property
    def leave_one_out(self) -> bool:
        """A twin of target signals only: each target predicted from the other targets' readings (its
        inputs are the targets' measured values; models.twin.graph)."""
        return not self.boundary_signals

    def lags(self) -> np.ndarray | None:
        """The sensor lag per target, in target order; None for a twin trained without lags."""
        return np.array([self.sensor_lag[t] for t in self.target_signals]) if self.sensor_lag else None

    def summary(self) -> dict:
        """Plain-data summary for clients: signals, boost choice and per-signal metrics."""
        return {
            "ensemble_name": self.name,
            "created_at": self.created_at,
            "boundary_signals": self.boundary_signals,
            "target_signals": self.target_signals,
            "boost_signals": self.boost_signals,
            "linear_signals": self.linear_signals,
            "metrics": {k: v.model_dump() for k, v in self.metrics.items()},
            "monitor": self.monitor.model_dump() if self.monitor else None,
        }


def read_manifest(folder: Path) -> EnsembleManifest:
    """The manifest of an ensemble folder."""
    return EnsembleManifest.model_validate_json((Path(folder) / MANIFEST_FILE).read_text())


def read_scalers(folder: Path) -> tuple[StandardScaler, StandardScaler]:
    """The (boundary, target) scalers of an ensemble folder."""
    scalers = json.loads((Path(folder) / SCALERS_FILE).read_text())
    return StandardScaler.from_dict(scalers["boundary"]), StandardScaler.from_dict(scalers["target"])
