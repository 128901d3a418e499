"""One training configuration: the CLI's flags come from its fields, overrides change it by name."""

from __future__ import annotations

import argparse

import pytest

from models.twin.training_config import TrainingConfig, add_arguments, from_arguments


def parse(*argv: str) -> TrainingConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_arguments(parser.parse_args(argv))


def test_every_field_has_a_flag_and_the_defaults_match():
    assert parse() == TrainingConfig()


def test_flags_fill_the_configuration_with_their_types():
    config = parse("--layers", "2", "--heads", "4", "--lr", "2e-3", "--no-sensor-lag", "--boost", "sst",
                   "--stage1-from", "data/model_repository/Ensemble_X")
    assert (config.num_layers, config.nhead, config.lr, config.sensor_lag, config.boost) == (2, 4, 0.002, False, "sst")
    assert str(config.stage1_from) == "data/model_repository/Ensemble_X"


def test_overrides_change_named_fields_and_refuse_unknown_ones():
    assert TrainingConfig().with_overrides(epochs=3).epochs == 3
    with pytest.raises(TypeError):
        TrainingConfig().with_overrides(epoch=3)
    with pytest.raises(ValueError, match="boost"):
        TrainingConfig(boost="xgb")
