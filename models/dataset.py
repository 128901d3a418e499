"""Loading signal tables from CSV and scoring predictions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SignalTable:
    """Selected columns of a CSV as float arrays; `timestamps` is None when the CSV has no such column."""

    boundary: np.ndarray
    target: np.ndarray
    timestamps: list[str] | None


def load_csv(path: Path, boundary_signals: list[str], target_signals: list[str]) -> SignalTable:
    """Read the named boundary and target columns (and `timestamp` if present) from a CSV file."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [s for s in boundary_signals + target_signals if s not in header]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    boundary = np.array([[float(r[s]) for s in boundary_signals] for r in rows], dtype=np.float64)
    target = np.array([[float(r[s]) for s in target_signals] for r in rows], dtype=np.float64)
    if not (np.isfinite(boundary).all() and np.isfinite(target).all()):
        raise ValueError(f"{path}: non-finite values in the selected columns")
    timestamps = [r["timestamp"] for r in rows] if "timestamp" in header else None
    return SignalTable(boundary, target, timestamps)


def r2_per_column(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each column."""
    residual = ((actual - predicted) ** 2).sum(axis=0)
    total = ((actual - actual.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - residual / np.where(total > 0, total, 1.0)
