"""`streamforge-calibrate`: an ensemble's monitor recalibrated from a CSV of normal operation."""

from __future__ import annotations

import shutil
import sys

import pytest

from models.twin.manifest import read_manifest
from models.twin.monitor.calibrate import main
from models.twin.plant import BOUNDARY_SIGNALS, simulate, write_csv


def test_recalibrating_from_a_csv_keeps_the_training_ranges_and_takes_the_csv_s_input_levels(
        demo_repository, demo_ensemble_name, tmp_path, monkeypatch, capsys):
    folder = tmp_path / demo_ensemble_name
    shutil.copytree(demo_repository.path(demo_ensemble_name), folder)
    before = read_manifest(folder).monitor
    normal = simulate(3000, seed=81)
    write_csv(normal, tmp_path / "normal.csv")
    monkeypatch.setattr(sys, "argv", ["streamforge-calibrate", "--ensemble", str(folder),
                                      "--csv", str(tmp_path / "normal.csv")])
    main()
    after = read_manifest(folder).monitor
    assert after.inputs == before.inputs  # what the twin was trained on does not change with a CSV
    assert list(after.input_levels) == BOUNDARY_SIGNALS
    speed = BOUNDARY_SIGNALS.index("Speed_boundary_1")
    level = after.input_levels["Speed_boundary_1"]
    assert level.mean == pytest.approx(normal.boundary[:, speed].mean(), rel=1e-6)
    # normal operation wanders less than the identification run the twin learned from
    assert level.std < before.input_levels["Speed_boundary_1"].std
    assert after.validation_samples == 3000
    assert "Temperature_target_1" in capsys.readouterr().out
