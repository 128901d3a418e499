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
LINEAR_WEIGHTS = "linear.pt"


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
    is hidden too. `linear` (leave-one-out only): a ridge regression of each target on the others, which
    serves the targets in `linear_only` (None: none) instead of both stages (where it predicted them better
    out of fold; a missing input counts as its training mean).
    """

    def __init__(self, stage1: StaticSensorTransformer, boost: nn.Module, leave_one_out: bool = False,
                 linear: nn.Linear | None = None, linear_only: torch.Tensor | None = None):
        super().__init__()
        self.stage1 = stage1
        self.boost = boost
        self.leave_one_out = leave_one_out
        self.linear = linear
        if linear is not None and linear_only is None:
            linear_only = torch.zeros(linear.out_features, dtype=torch.bool)
        self.register_buffer("linear_only", None if linear is None else torch.as_tensor(linear_only, dtype=torch.bool))

    def forward(self, boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.leave_one_out:
            stage1 = self.stage1(boundary)
            return stage1, self.boost(boundary, stage1)
        n = boundary.shape[1]
        copies = hidden_copies(boundary)
        stage1 = self.stage1(copies)
        residual = self.boost(copies, stage1)
        own = torch.eye(n, dtype=boundary.dtype, device=boundary.device)  # copy j's output j
        stage1, residual = (stage1.reshape(-1, n, n) * own).sum(dim=2), (residual.reshape(-1, n, n) * own).sum(dim=2)
        if self.linear is None:
            return stage1, residual
        linear = (self.linear(torch.nan_to_num(copies, nan=0.0)).reshape(-1, n, n) * own).sum(dim=2)
        return (torch.where(self.linear_only, linear, stage1),
                torch.where(self.linear_only, torch.zeros_like(residual), residual))


def load_stage1(folder: Path, manifest: EnsembleManifest) -> StaticSensorTransformer:
    """Stage 1 of an ensemble folder with its trained weights, in eval mode."""
    stage1 = StaticSensorTransformer(SSTConfig(**manifest.stage1_config))
    stage1.load_state_dict(torch.load(Path(folder) / STAGE1_WEIGHTS))
    return stage1.eval()


def load_graph(folder: Path, manifest: EnsembleManifest) -> EnsembleGraph:
    """Both stages (and the linear fallback, if any) of an ensemble folder with their trained weights, in
    eval mode."""
    boost = build_boost(manifest.boost_config)
    boost.load_state_dict(torch.load(Path(folder) / BOOST_WEIGHTS))
    linear, linear_only = None, None
    if manifest.linear_signals:
        n = len(manifest.target_signals)
        linear = nn.Linear(n, n)
        linear.load_state_dict(torch.load(Path(folder) / LINEAR_WEIGHTS))
        linear_only = torch.tensor([t in manifest.linear_signals for t in manifest.target_signals])
    return EnsembleGraph(load_stage1(folder, manifest), boost.eval(), manifest.leave_one_out, linear,
                         linear_only).eval()
