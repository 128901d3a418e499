"""The twin as one PyTorch graph (Stage 1 and its residual boost), as trained, exported to ONNX and
rebuilt from an ensemble folder's weights (for fine-tuning, export checks and the PyTorch baseline).

Requires torch (the `train` extra); serving runs the exported ONNX graph (models.twin.ensemble).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.twin.manifest import EnsembleManifest
from models.twin.residual_boost import build_boost
from models.twin.sst import SSTConfig, StaticSensorTransformer

STAGE1_WEIGHTS = "stage1.pt"
BOOST_WEIGHTS = "boost.pt"


def hidden_copies(inputs: torch.Tensor) -> torch.Tensor:
    """[batch, n] -> [batch * n, n]: n copies of each row, copy j with input j hidden (NaN)."""
    n = inputs.shape[1]
    hidden = torch.eye(n, dtype=inputs.dtype, device=inputs.device) > 0
    return torch.where(hidden, torch.full_like(inputs, float("nan"))[:1].expand(n, n),
                       inputs.unsqueeze(1)).reshape(-1, n)


class EnsembleGraph(nn.Module):
    """Both stages in one graph, so serving needs one runtime call: (stage1, residual) in scaled units.

    `leave_one_out` (a twin of target signals only, no boundary inputs): the inputs are the targets' own
    readings, and each target is predicted from the *other* readings - the graph runs both stages on
    `hidden_copies` of each row and keeps, per target, the copy that hid it. A NaN input (not measured)
    is hidden too.
    """

    def __init__(self, stage1: StaticSensorTransformer, boost: nn.Module, leave_one_out: bool = False):
        super().__init__()
        self.stage1 = stage1
        self.boost = boost
        self.leave_one_out = leave_one_out

    def forward(self, boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.leave_one_out:
            stage1 = self.stage1(boundary)
            return stage1, self.boost(boundary, stage1)
        n = boundary.shape[1]
        copies = hidden_copies(boundary)
        stage1 = self.stage1(copies)
        residual = self.boost(copies, stage1)
        own = torch.eye(n, dtype=boundary.dtype, device=boundary.device)  # copy j's output j
        return ((stage1.reshape(-1, n, n) * own).sum(dim=2),
                (residual.reshape(-1, n, n) * own).sum(dim=2))


def load_stage1(folder: Path, manifest: EnsembleManifest) -> StaticSensorTransformer:
    """Stage 1 of an ensemble folder with its trained weights, in eval mode."""
    stage1 = StaticSensorTransformer(SSTConfig(**manifest.stage1_config))
    stage1.load_state_dict(torch.load(Path(folder) / STAGE1_WEIGHTS))
    return stage1.eval()


def load_graph(folder: Path, manifest: EnsembleManifest) -> EnsembleGraph:
    """Both stages of an ensemble folder with their trained weights, in eval mode."""
    boost = build_boost(manifest.boost_config)
    boost.load_state_dict(torch.load(Path(folder) / BOOST_WEIGHTS))
    return EnsembleGraph(load_stage1(folder, manifest), boost.eval(), manifest.leave_one_out).eval()
