"""The twin ensemble on PyTorch, from an ensemble folder's `.pt` weights: the runtime for a GPU node whose
onnxruntime has no CUDA provider (PyTorch with CUDA is the usual image there).

On CUDA, inputs are padded to a few fixed batch sizes, so each size is captured once as a CUDA graph and
replayed (a 256-row call is then one launch instead of dozens of kernels); `dtype` float16 or bfloat16
halves memory traffic where the accuracy allows it (tests/models/test_torch_runtime.py measures the gap
to ONNX). Requires torch (the `train` or `gpu` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.twin.graph import load_graph
from models.twin.manifest import EnsembleManifest

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
GRAPH_BATCHES = (1, 16, 256, 1024, 4096)  # CUDA graph sizes; a call is padded to the next one


def cuda_available() -> bool:
    """Whether this PyTorch build sees a CUDA GPU."""
    return torch.cuda.is_available()


class TorchEnsembleRunner:
    """`run_scaled(boundary_scaled)` -> (stage1, residual), as the ONNX graph answers, on `device`."""

    def __init__(self, folder: Path, manifest: EnsembleManifest, device: str = "cuda", dtype: str = "float32",
                 cuda_graphs: bool = True):
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.graph = load_graph(Path(folder), manifest).to(self.device, self.dtype)
        self.n_boundary = len(manifest.boundary_signals)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._use_graphs = cuda_graphs and self.device.type == "cuda"

    def _captured(self, rows: int):
        """The CUDA graph for `rows` rows (captured on first use), with its static input and outputs."""
        if rows not in self._graphs:
            static_in = torch.zeros(rows, self.n_boundary, device=self.device, dtype=self.dtype)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(2):  # warm-up on a side stream, as CUDA graph capture requires
                    self.graph(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_out = self.graph(static_in)
            self._graphs[rows] = (graph, static_in, static_out)
        return self._graphs[rows]

    def run_scaled(self, boundary_scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled boundary rows [n, n_boundary] -> (stage1, residual) [n, n_target], scaled, float32."""
        n = len(boundary_scaled)
        x = torch.from_numpy(np.ascontiguousarray(boundary_scaled, dtype=np.float32))
        size = next((b for b in GRAPH_BATCHES if b >= n), None)
        with torch.inference_mode():
            if self._use_graphs and size is not None:
                graph, static_in, (stage1, residual) = self._captured(size)
                static_in.zero_()
                static_in[:n].copy_(x.to(self.device, self.dtype, non_blocking=True))
                graph.replay()
                stage1, residual = stage1[:n], residual[:n]
            else:
                stage1, residual = self.graph(x.to(self.device, self.dtype))
            return stage1.float().cpu().numpy(), residual.float().cpu().numpy()
