"""A trained twin ensemble on disk, and how to run it with ONNX Runtime.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from models.monitor import MonitorCalibration
from models.onnx_runtime import inference_session, onnx_providers
from models.scaling import StandardScaler

MANIFEST_FILE = "manifest.json"
SCALERS_FILE = "scalers.json"
ONNX_FILE = "ensemble.onnx"


@dataclass
class RowBatch:
    """Rows to predict and, per row, which targets use the boost (what `Ensemble.predict` takes)."""

    boundary: np.ndarray  # [n, n_boundary] float64
    boost_mask: np.ndarray  # [n, n_target] bool

    def __len__(self) -> int:
        return len(self.boundary)


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
    sensor_lag: dict[str, float] = {}  # learned first-order lag per target (models.sensor_lag); {}: none
    monitor: MonitorCalibration | None = None  # residual monitor calibration (models.monitor)

    @property
    def leave_one_out(self) -> bool:
        """A twin of target signals only: each target predicted from the other targets' readings (its
        inputs are the targets' measured values; models.twin_graph)."""
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


RUNTIMES = ("cpu", "cuda", "auto")


def _nvidia_gpu_present() -> bool:
    """A cheap look for an NVIDIA driver before importing PyTorch (which costs seconds and memory)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


class _OnnxRunner:
    def __init__(self, path: Path, intra_op_threads: int, cuda: bool):
        self.session = inference_session(str(path), intra_op_threads, prefer_gpu=cuda)

    def run_scaled(self, boundary_scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stage1, residual = self.session.run(None, {"boundary": boundary_scaled.astype(np.float32)})
        return stage1, residual


def _runner(folder: Path, manifest: EnsembleManifest, intra_op_threads: int, runtime: str):
    """(runner, its name) for `runtime`: `cpu` is ONNX Runtime on the CPU; `cuda` is ONNX Runtime's CUDA
    provider where onnxruntime-gpu is installed, else PyTorch on CUDA; `auto` is `cuda` where a GPU is
    found, else `cpu`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime != "cpu":
        if "CUDAExecutionProvider" in onnx_providers(prefer_gpu=True):
            return _OnnxRunner(folder / ONNX_FILE, intra_op_threads, cuda=True), "onnxruntime-cuda"
        if _nvidia_gpu_present():
            from models.torch_runtime import TorchEnsembleRunner, cuda_available
            if cuda_available():
                return TorchEnsembleRunner(folder, manifest, device="cuda"), "torch-cuda"
        if runtime == "cuda":
            raise RuntimeError("runtime 'cuda': no CUDA GPU found (neither onnxruntime-gpu's CUDA provider nor "
                               "PyTorch with CUDA sees one); use `auto` or `cpu`")
    return _OnnxRunner(folder / ONNX_FILE, intra_op_threads, cuda=False), "onnxruntime-cpu"


class Ensemble:
    """A loaded ensemble: validated inputs in physical units -> predictions in physical units."""

    def __init__(self, folder: Path, intra_op_threads: int = 0, runtime: str = "auto"):
        """`runtime`: `cpu`, `cuda` or `auto` (see _runner); `self.runtime` names the one in use."""
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.boundary_scaler, self.target_scaler = read_scalers(self.folder)
        self._runner, self.runtime = _runner(self.folder, self.manifest, intra_op_threads, runtime)
        self.default_boost = self.boost_mask({})

    @property
    def name(self) -> str:
        return self.manifest.name

    def boost_mask(self, overrides: dict[str, bool]) -> np.ndarray:
        """Per-target boolean mask: the manifest's boost choice with `overrides` {target: bool} applied."""
        default = set(self.manifest.boost_signals)
        return np.array(
            [overrides.get(t, t in default) for t in self.manifest.target_signals], dtype=bool
        )

    def run_scaled(self, boundary_scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One runtime call: scaled boundary rows -> (stage1, residual) in scaled target units."""
        return self._runner.run_scaled(boundary_scaled)

    def predict(self, boundary: np.ndarray, boost_mask: np.ndarray | None = None) -> np.ndarray:
        """boundary [n, n_boundary] -> targets [n, n_target], physical units.

        `boost_mask` is [n_target] or per row [n, n_target]; None uses the manifest's choice.
        """
        stage1, residual = self.run_scaled(self.boundary_scaler.transform(boundary))
        mask = self.default_boost if boost_mask is None else boost_mask
        return self.target_scaler.inverse(stage1 + residual * mask)

    def describe(self) -> dict:
        """Plain-data summary for clients (EnsembleManifest.summary)."""
        return self.manifest.summary()
