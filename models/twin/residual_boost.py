"""Stage-2 residual boosts: what Stage 1 got wrong, per target, in scaled units.

Every boost is called as `boost(boundary, stage1)` with the scaled boundary rows and Stage 1's scaled
prediction. Two kinds, named by `kind` in the manifest's `boost_config`:

    "mlp"  (default) an MLP over the boundary signals *and* Stage 1's prediction (stacking). Stage 1's
           error is not a smooth function of the boundary alone - a Transformer extrapolates in jumps at
           rare operating points - but with Stage 1's prediction as an input the boost can correct it
           everywhere it saw training data. Cheap to train on a CPU.
    "sst"  a smaller StaticSensorTransformer over the boundary signals only (the first boost design;
           manifests without `kind` hold one).

Requires torch (the `train` extra); serving runs the exported ONNX graph instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from models.twin.sst import SSTConfig, StaticSensorTransformer


@dataclass(frozen=True)
class MLPBoostConfig:
    """Architecture of an MLP boost; stored in the manifest (with kind "mlp") to rebuild the weights."""

    n_boundary: int
    n_target: int
    width: int = 256
    layers: int = 3  # hidden layers
    masked: bool = False  # boundary values may be NaN (not known): the MLP also sees which ones are

    def to_dict(self) -> dict:
        return {"kind": "mlp", **asdict(self)}


class MLPBoost(nn.Module):
    """[boundary, stage1] -> residual: SiLU MLP with `layers` hidden layers of `width` units."""

    def __init__(self, config: MLPBoostConfig):
        super().__init__()
        self.config = config
        inputs = config.n_boundary * (2 if config.masked else 1) + config.n_target
        sizes = [inputs] + [config.width] * config.layers
        hidden = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*hidden, nn.Linear(config.width, config.n_target))

    def forward(self, boundary: torch.Tensor, stage1: torch.Tensor) -> torch.Tensor:
        """boundary [batch, n_boundary], stage1 [batch, n_target] (scaled) -> residual [batch, n_target]."""
        if self.config.masked:
            missing = torch.isnan(boundary)
            return self.net(torch.cat([torch.nan_to_num(boundary, nan=0.0), missing.to(stage1.dtype), stage1], dim=1))
        return self.net(torch.cat([boundary, stage1], dim=1))


class SSTBoost(StaticSensorTransformer):
    """The SST boost: an SST over the boundary signals; Stage 1's prediction is not used."""

    def forward(self, boundary: torch.Tensor, stage1: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(boundary)


def sst_boost_config(config: SSTConfig) -> dict:
    """Manifest form of an SST boost's architecture."""
    return {"kind": "sst", **config.to_dict()}


def build_boost(config: dict) -> nn.Module:
    """An untrained boost from a manifest's `boost_config` (no `kind`: an SST, as older manifests hold)."""
    fields = {k: v for k, v in config.items() if k != "kind"}
    kind = config.get("kind", "sst")
    if kind == "mlp":
        return MLPBoost(MLPBoostConfig(**fields))
    if kind == "sst":
        return SSTBoost(SSTConfig(**fields))
    raise ValueError(f"unknown boost kind {kind!r}")
