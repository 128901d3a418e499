"""Where an ensemble runs: ONNX Runtime on the CPU or CUDA, or PyTorch on CUDA where onnxruntime has no CUDA
provider. The one place that chooses (`choose_runner`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.onnx_runtime import inference_session, onnx_providers
from models.twin.manifest import ONNX_FILE, EnsembleManifest

RUNTIMES = ("cpu", "cuda", "auto")


def _nvidia_gpu_present() -> bool:
    """A cheap look for an NVIDIA driver before importing PyTorch (which costs seconds and memory)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


class OnnxRunner:
    """`run_scaled(boundary_scaled)` -> (stage1, residual) with ONNX Runtime."""

    def __init__(self, path: Path, intra_op_threads: int, cuda: bool):
        self.session = inference_session(str(path), intra_op_threads, prefer_gpu=cuda)

    def run_scaled(self, boundary_scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stage1, residual = self.session.run(None, {"boundary": boundary_scaled.astype(np.float32)})
        return stage1, residual


def choose_runner(folder: Path, manifest: EnsembleManifest, intra_op_threads: int, runtime: str):
    """(runner, its name) for `runtime`: `cpu` is ONNX Runtime on the CPU; `cuda` is ONNX Runtime's CUDA
    provider where onnxruntime-gpu is installed, else PyTorch on CUDA; `auto` is `cuda` where a GPU is
    found, else `cpu`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime != "cpu":
        if "CUDAExecutionProvider" in onnx_providers(prefer_gpu=True):
            return OnnxRunner(folder / ONNX_FILE, intra_op_threads, cuda=True), "onnxruntime-cuda"
        if _nvidia_gpu_present():
            from models.twin.torch_runtime import TorchEnsembleRunner, cuda_available
            if cuda_available():
                return TorchEnsembleRunner(folder, manifest, device="cuda"), "torch-cuda"
        if runtime == "cuda":
            raise RuntimeError("runtime 'cuda': no CUDA GPU found (neither onnxruntime-gpu's CUDA provider nor "
                               "PyTorch with CUDA sees one); use `auto` or `cpu`")
    return OnnxRunner(folder / ONNX_FILE, intra_op_threads, cuda=False), "onnxruntime-cpu"
