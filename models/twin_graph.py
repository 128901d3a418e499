"""The twin as one PyTorch graph (Stage 1 and its residual boost), as trained, exported to ONNX and
rebuilt from an ensemble folder's weights (for fine-tuning, export checks and the PyTorch baseline).

Requires torch (the `train` extra); serving runs the exported ONNX graph (models.ensemble).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.ensemble import EnsembleManifest
from models.residual_boost import build_boost
from models.sst import SSTConfig, StaticSensorTransformer

STAGE1_WEIGHTS = "stage1.pt"
BOOST_WEIGHTS = "boost.pt"


class EnsembleGraph(nn.Module):
    """Both stages in one graph, so serving needs one runtime call: (stage1, residual) in scaled units."""

    def __init__(self, stage1: StaticSensorTransformer, boost: nn.Module):
        super().__init__()
        self.stage1 = stage1
        self.boost = boost

    def forward(self, boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stage1 = self.stage1(boundary)
        return stage1, self.boost(boundary, stage1)


def load_stage1(folder: Path, manifest: EnsembleManifest) -> StaticSensorTransformer:
    """Stage 1 of an ensemble folder with its trained weights, in eval mode."""
    stage1 = StaticSensorTransformer(SSTConfig(**manifest.stage1_config))
    stage1.load_state_dict(torch.load(Path(folder) / STAGE1_WEIGHTS))
    return stage1.eval()


def load_graph(folder: Path, manifest: EnsembleManifest) -> EnsembleGraph:
    """Both stages of an ensemble folder with their trained weights, in eval mode."""
    boost = build_boost(manifest.boost_config)
    boost.load_state_dict(torch.load(Path(folder) / BOOST_WEIGHTS))
    return EnsembleGraph(load_stage1(folder, manifest), boost.eval()).eval()
