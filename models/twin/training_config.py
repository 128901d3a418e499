"""Every setting of a twin training run, stated once: `train_ensemble` takes a `TrainingConfig` (plus
overrides by name), and `streamforge-train` makes one flag per field from this class."""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

SIZED = "default: from the number of rows (models.twin.train.model_plan)"


def _setting(default, help: str, flag: str | None = None):
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class TrainingConfig:
    """How to train a twin ensemble. Fields left None are sized from the data (`model_plan`)."""

    epochs: int | None = _setting(None, f"Stage-1 epochs at most; {SIZED}")
    boost_epochs: int | None = _setting(None, f"boost epochs at most; {SIZED}")
    d_model: int | None = _setting(None, SIZED)
    num_layers: int | None = _setting(None, SIZED, flag="--layers")
    nhead: int | None = _setting(None, SIZED, flag="--heads")
    lr: float | None = _setting(None, SIZED)
    batch_size: int | None = _setting(None, SIZED)
    boost: str = _setting("mlp", "residual boost kind: mlp or sst (models.twin.residual_boost)")
    boost_width: int = _setting(256, "hidden units of an MLP boost")
    boost_d_model: int = _setting(64, "d_model of an SST boost")
    boost_layers: int = _setting(3, "hidden layers (MLP) or encoder layers (SST) of the boost")
    dropout: float = _setting(0.1, "dropout of the Transformers")
    delta_r2: float = _setting(0.002, "minimum held-out R² gain to use the boost on a target")
    val_fraction: float = _setting(0.15, "share of rows held out to calibrate (from 20,000 rows)")
    test_fraction: float = _setting(0.15, "share of rows held out to test (from 20,000 rows)")
    folds: int = _setting(5, "cross-fitting folds below 20,000 rows")
    seed: int = _setting(0, "seed of every random choice (see Seeds)")
    sensor_lag: bool = _setting(True, "estimate each sensor's first-order lag (rows must be consecutive "
                                      "samples); --no-sensor-lag fits the readings as they are")
    device: str = _setting("auto", "torch device to train on; auto: cuda where PyTorch sees a GPU, else cpu")
    stage1_from: Path | None = _setting(None, "ensemble folder whose Stage 1, scalers and sensor lags to reuse: "
                                              "train only a new boost")

    def __post_init__(self):
        if self.boost not in ("mlp", "sst"):
            raise ValueError(f"boost must be mlp or sst, not {self.boost!r}")

    def with_overrides(self, **overrides) -> TrainingConfig:
        """This configuration with the named fields changed (an unknown name is an error)."""
        return replace(self, **overrides)


@dataclass(frozen=True)
class Seeds:
    """Offsets from `TrainingConfig.seed` for each random stream of a run, so they differ from each other."""

    boost: int = 1  # the boost's initial weights and batch order (Stage 1 uses the seed itself)
    stage1_examples: int = 3  # leave-one-out twins: which inputs the Stage-1 fit rows hide (+1: early-stop rows)
    boost_examples: int = 5  # the same for the boost's fit rows (+1: early-stop rows)
    fold_stride: int = 10  # cross-fitting: fold k's twin is seeded seed + fold_stride * (k + 1)


SEEDS = Seeds()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One command-line flag per TrainingConfig field (`--boost-epochs`, `--sensor-lag/--no-sensor-lag`...)."""
    hints = typing.get_type_hints(TrainingConfig)
    for f in fields(TrainingConfig):
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f.metadata["help"])
            continue
        kind = next(k for k in typing.get_args(hints[f.name]) or (hints[f.name],) if k is not type(None))
        parser.add_argument(flag, dest=f.name, type=kind, default=default, help=f.metadata["help"])


def from_arguments(args: argparse.Namespace) -> TrainingConfig:
    """The TrainingConfig the command line asked for."""
    return TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(TrainingConfig)})
