"""Loading signal tables from CSV and scoring predictions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SignalTable:
    """Selected columns of a CSV as float arrays; `timestamps` is None when the CSV has no such column.
    `dropped_rows`: rows left out because a selected cell was empty or NaN (gaps)."""

    boundary: np.ndarray
    target: np.ndarray
    timestamps: list[str] | None
    dropped_rows: int = 0


def _number(text: str | None, column: str, line: int, path: Path) -> float:
    """A cell as a float; NaN for an empty cell (a gap); ValueError naming the cell for anything else."""
    if text is None or not text.strip():
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: column {column!r}, line {line}: {text[:40]!r} is not a number") from None


def load_csv(path: Path, boundary_signals: list[str], target_signals: list[str]) -> SignalTable:
    """Read the named boundary and target columns (and `timestamp` if present) from a CSV file.

    Rows with a gap (an empty or NaN cell) in a selected column are left out and counted; a missing or
    non-numeric column, infinite values, or a table with no complete row raise ValueError saying where."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [s for s in boundary_signals + target_signals if s not in header]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    columns = boundary_signals + target_signals
    values = np.array([[_number(r[s], s, i + 2, path) for s in columns] for i, r in enumerate(rows)], dtype=np.float64)
    if np.isinf(values).any():
        raise ValueError(f"{path}: infinite values in columns "
                         f"{[c for c, bad in zip(columns, np.isinf(values).any(0)) if bad]}")
    complete = ~np.isnan(values).any(axis=1)
    if not complete.any():
        raise ValueError(f"{path}: every row has a gap in the selected columns")
    values = values[complete]
    timestamps = [r["timestamp"] for r, keep in zip(rows, complete) if keep] if "timestamp" in header else None
    return SignalTable(values[:, :len(boundary_signals)], values[:, len(boundary_signals):], timestamps,
                       int((~complete).sum()))


def check_trainable(table: SignalTable, boundary_signals: list[str], target_signals: list[str],
                    min_rows: int) -> None:
    """ValueError, before any training, for a table a twin cannot be trained on: too few rows, or
    constant columns (nothing to learn from or to predict)."""
    if len(table.boundary) < min_rows:
        raise ValueError(f"{len(table.boundary)} complete rows are too few to train and calibrate a twin "
                         f"(need >= {min_rows})" + (f"; {table.dropped_rows} rows with gaps were left out"
                                                    if table.dropped_rows else ""))
    columns = np.hstack([table.boundary, table.target])
    constant = [c for c, spread in zip(boundary_signals + target_signals, columns.std(axis=0)) if spread == 0]
    if constant:
        raise ValueError(f"constant columns carry no information: {constant}")


def r2_per_column(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each column."""
    residual = ((actual - predicted) ** 2).sum(axis=0)
    total = ((actual - actual.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - residual / np.where(total > 0, total, 1.0)
