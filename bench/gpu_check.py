"""The twin ensemble's raw limits on a GPU, without serving: rows/s at batch 256 / 1024 / 4096 for each
precision, and the largest gap to the ONNX Runtime CPU answer (physical units).

    python -m bench.gpu_check                  # on a GPU node: writes bench/results/gpu.json
    python -m bench.gpu_check --device cpu     # the same measurement on the CPU (a dry run)

It needs numpy, onnxruntime, torch and pydantic only (no Ray, no serve_app), so it runs on a bare GPU
image with pydantic's two wheels carried along.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from models.twin.ensemble import Ensemble
from models.twin.plant import simulate
from models.twin.repository import ModelRepository
from models.twin.torch_runtime import TorchEnsembleRunner

BATCHES = (256, 1024, 4096)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def device_name(device: str) -> str:
    """The accelerator's name (torch), or the CPU's."""
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "cpu")


def rows_per_s(runner: TorchEnsembleRunner, boundary: np.ndarray, batch: int, seconds: float) -> float:
    """Rows predicted per second, one call of `batch` rows after another (results back on the host)."""
    rows = boundary[:batch]
    runner.run_scaled(rows)  # warm-up (and CUDA graph capture)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        runner.run_scaled(rows)
        done += batch
    return done / (time.perf_counter() - start)


def measure(device: str, seconds: float, batches: tuple[int, ...] = BATCHES) -> dict:
    """Rows/s at each batch size and the largest gap to ONNX Runtime on the CPU, per precision."""
    repository = ModelRepository(PROJECT_ROOT / "data" / "model_repository")
    name = next(n for n in repository.names() if n.startswith("Ensemble_DemoPlant_"))
    reference = Ensemble(repository.path(name), runtime="cpu")
    data = simulate(max(batches), seed=23).boundary
    boundary = reference.boundary_scaler.transform(data)
    expected = reference.predict(data)
    result = {"device": device_name(device), "ensemble": name, "precisions": {}}
    for dtype in ("float32", "float16", "bfloat16"):
        runner = TorchEnsembleRunner(reference.folder, reference.manifest, device, dtype)
        stage1, residual = runner.run_scaled(boundary)
        got = reference.target_scaler.inverse(stage1 + residual * reference.default_boost)
        result["precisions"][dtype] = {
            "max_abs_diff_vs_onnx": dict(
                zip(reference.manifest.target_signals, np.abs(got - expected).max(0).round(6).tolist())
            ),
            "rows_per_s": {str(b): round(rows_per_s(runner, boundary, b, seconds)) for b in batches},
        }
        print(dtype, result["precisions"][dtype]["rows_per_s"], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size and precision")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "bench" / "results" / "gpu.json"))
    args = parser.parse_args()
    result = measure(args.device, args.seconds)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
