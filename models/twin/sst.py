"""StaticSensorTransformer (SST): each boundary sensor reading is one token.

The twin's Stage 1 maps boundary signals to target signals with it; the `sst` residual boost is a
smaller SST (see models.twin.residual_boost).
Requires torch (the `train` extra); serving runs the exported ONNX graph instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SSTConfig:
    """Architecture of one SST; stored in the ensemble manifest so the weights can be rebuilt."""

    n_boundary: int
    n_target: int
    d_model: int = 128
    nhead: int = 8
    num_layers: int = 3
    dim_feedforward: int | None = None  # default 2 * d_model
    dropout: float = 0.1
    masked: bool = False  # inputs may be NaN (not measured, or held out): those tokens get a learned mask embedding
    linear_skip: bool = False  # add a linear map of the inputs: never worse than linear regression on little data

    def to_dict(self) -> dict:
        return asdict(self)


class StaticSensorTransformer(nn.Module):
    """Scalar -> Linear(1, d_model) + learned per-sensor position, Transformer encoder, mean-pool, head."""

    def __init__(self, config: SSTConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(1, config.d_model)
        self.position = nn.Parameter(torch.randn(1, config.n_boundary, config.d_model) * 0.02)
        if config.masked:
            self.mask_token = nn.Parameter(torch.randn(1, 1, config.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.nhead,
            dim_feedforward=config.dim_feedforward or 2 * config.d_model,
            dropout=config.dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.n_target))
        if config.linear_skip:
            self.skip = nn.Linear(config.n_boundary, config.n_target)
            nn.init.zeros_(self.head[1].weight)  # the Transformer starts as no correction to the linear map
            nn.init.zeros_(self.head[1].bias)

    @torch.no_grad()
    def fit_linear(self, inputs: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-2) -> None:
        """Set the linear skip to the ridge regression of each target on the inputs (`ridge_weights`), the
        starting point training improves on."""
        weight, bias, fitted = ridge_weights(inputs, targets, ridge)
        self.skip.weight[fitted] = weight[fitted].float()
        self.skip.bias[fitted] = bias[fitted].float()

    def forward(self, boundary: torch.Tensor) -> torch.Tensor:
        """boundary [batch, n_boundary] (scaled; NaN where not known, if `masked`) -> [batch, n_target] (scaled)."""
        if not self.config.masked:
            tokens = self.embed(boundary.unsqueeze(-1)) + self.position
        else:
            missing = torch.isnan(boundary).unsqueeze(-1)
            known = self.embed(torch.nan_to_num(boundary, nan=0.0).unsqueeze(-1))
            tokens = torch.where(missing, self.mask_token, known) + self.position
        out = self.head(self.encoder(tokens).mean(dim=1))
        if self.config.linear_skip:  # a missing (NaN) input counts as its training mean (0 when scaled)
            out = out + self.skip(torch.nan_to_num(boundary, nan=0.0))
        return out


@torch.no_grad()
def ridge_weights(inputs: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """Ridge regression of each target on the inputs over the rows where that target is known (NaN
    inputs as 0: their training mean when scaled), penalty `ridge` x rows: (weight [n_out, n_in], bias
    [n_out], which targets had enough rows to fit), float64."""
    x = torch.cat([torch.nan_to_num(inputs.double(), nan=0.0), torch.ones(len(inputs), 1, dtype=torch.float64)], 1)
    weight = torch.zeros(targets.shape[1], x.shape[1] - 1, dtype=torch.float64)
    bias = torch.zeros(targets.shape[1], dtype=torch.float64)
    fitted = torch.zeros(targets.shape[1], dtype=torch.bool)
    for j in range(targets.shape[1]):
        rows = ~torch.isnan(targets[:, j])
        if rows.sum() <= x.shape[1]:
            continue
        a, b = x[rows], targets[rows, j].double()
        w = torch.linalg.solve(a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=torch.float64), a.T @ b)
        weight[j], bias[j], fitted[j] = w[:-1], w[-1], True
    return weight, bias, fitted
