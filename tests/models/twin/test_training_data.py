"""Training data a plant engineer brings: gaps, bad cells, constant or too few rows are reported before
any training, and an ensemble folder appears whole or not at all."""

from __future__ import annotations

import csv

import pytest

import models.twin.train
from models.twin.dataset import SignalTable, load_csv
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from models.twin.repository import ModelRepository
from models.twin.train import MIN_TRAINING_ROWS, train_ensemble

SIGNALS = BOUNDARY_SIGNALS + TARGET_SIGNALS


def write_csv(path, rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *SIGNALS])
        writer.writerows(rows)


def plant_rows(n: int, seed: int = 1) -> list[list]:
    data = simulate(n, seed=seed)
    return [[t, *b, *y] for t, b, y in zip(data.timestamps, data.boundary.tolist(), data.target.tolist())]


def test_gaps_are_left_out_and_counted(tmp_path):
    rows = plant_rows(6)
    rows[1][3] = ""  # an empty cell
    rows[4][-1] = "nan"  # and a NaN
    write_csv(tmp_path / "gaps.csv", rows)
    table = load_csv(tmp_path / "gaps.csv", BOUNDARY_SIGNALS, TARGET_SIGNALS)
    assert table.dropped_rows == 2 and len(table.boundary) == 4
    assert table.timestamps == [rows[i][0] for i in (0, 2, 3, 5)]


def test_a_cell_that_is_not_a_number_is_named(tmp_path):
    rows = plant_rows(4)
    rows[2][1 + BOUNDARY_SIGNALS.index("Flow_boundary_1")] = "n/a (pump off)"
    write_csv(tmp_path / "text.csv", rows)
    with pytest.raises(ValueError, match=r"column 'Flow_boundary_1', line 4: 'n/a \(pump off\)' is not a number"):
        load_csv(tmp_path / "text.csv", BOUNDARY_SIGNALS, TARGET_SIGNALS)


def test_too_few_rows_and_constant_columns_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(models.twin.train, "fit", lambda *a, **k: pytest.fail("training started"))
    data = simulate(150, seed=2)
    with pytest.raises(ValueError, match=rf"150 complete rows are too few .* \(need >= {MIN_TRAINING_ROWS}\)"):
        train_ensemble(SignalTable(data.boundary, data.target, None), BOUNDARY_SIGNALS, TARGET_SIGNALS, tmp_path, "Few")
    data = simulate(800, seed=3)
    boundary = data.boundary.copy()
    boundary[:, BOUNDARY_SIGNALS.index("Valve_boundary_1")] = 0.5  # a valve that never moved
    with pytest.raises(ValueError, match=r"constant columns carry no information: \['Valve_boundary_1'\]"):
        train_ensemble(SignalTable(boundary, data.target, None), BOUNDARY_SIGNALS, TARGET_SIGNALS, tmp_path, "Flat")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_failed_write_leaves_no_ensemble_folder(tmp_path, monkeypatch):
    def broken_export(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(models.twin.train, "export_onnx", broken_export)
    data = simulate(800, seed=4)
    with pytest.raises(OSError, match="disk full"):
        train_ensemble(SignalTable(data.boundary, data.target, None), BOUNDARY_SIGNALS, TARGET_SIGNALS, tmp_path,
                       "Broken", epochs=1, boost_epochs=1, d_model=16, num_layers=1, nhead=2, batch_size=256)
    assert list(tmp_path.iterdir()) == []  # neither the ensemble nor its partial folder
    assert ModelRepository(tmp_path).names() == []
