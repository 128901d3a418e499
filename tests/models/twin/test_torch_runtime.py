"""The ensemble runtimes: chosen by setting (`cpu`, `cuda`, `auto`), and the PyTorch runtime answering as
the ONNX graph does (on this CPU; on a GPU node bench/gpu_check.py compares them on CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from models.twin.ensemble import Ensemble
from models.twin.plant import simulate
from models.twin.torch_runtime import TorchEnsembleRunner, cuda_available


@pytest.fixture(scope="module")
def demo(demo_repository, demo_ensemble_name) -> Ensemble:
    return Ensemble(demo_repository.path(demo_ensemble_name), runtime="cpu")


def test_torch_runtime_matches_onnx_on_cpu(demo):
    boundary = demo.boundary_scaler.transform(simulate(700, seed=17).boundary)
    torch_runner = TorchEnsembleRunner(demo.folder, demo.manifest, device="cpu")
    for rows in (boundary[:1], boundary[:256], boundary):
        onnx_out, torch_out = demo.run_scaled(rows), torch_runner.run_scaled(rows)
        for a, b in zip(onnx_out, torch_out):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, atol=2e-4)  # float32 on both: only summation order differs


def test_half_precision_stays_close_in_physical_units(demo):
    data = simulate(500, seed=18)
    boundary = demo.boundary_scaler.transform(data.boundary)
    full = demo.target_scaler.inverse(sum(demo.run_scaled(boundary)))
    half = demo.target_scaler.inverse(sum(TorchEnsembleRunner(demo.folder, demo.manifest, "cpu", "bfloat16")
                                          .run_scaled(boundary)))
    spread = data.target.std(axis=0)
    # bfloat16 keeps 8 bits of mantissa: within 2% of each target's spread, far under a sensor's noise band
    assert (np.abs(half - full).max(axis=0) < 0.02 * spread).all()


def test_runtime_is_chosen_by_setting(demo_repository, demo_ensemble_name):
    folder = demo_repository.path(demo_ensemble_name)
    assert Ensemble(folder, runtime="cpu").runtime == "onnxruntime-cpu"
    auto = Ensemble(folder, runtime="auto")
    assert auto.runtime == ("torch-cuda" if cuda_available() else "onnxruntime-cpu")
    if not cuda_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            Ensemble(folder, runtime="cuda")
    with pytest.raises(ValueError, match="runtime"):
        Ensemble(folder, runtime="tpu")
