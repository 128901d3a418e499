"""Session histories with known values, for the history export and session-shard tests."""

from __future__ import annotations

import json

import numpy as np

from serve_app.twin.history import history_json
from serve_app.twin.history_log import HistoryChunk


def counting_chunk(start: int, n: int) -> HistoryChunk:
    """Samples t<start>..: boundary a = i, b = -i; prediction y = 10 i; latency 2 ms."""
    idx = np.arange(start, start + n, dtype=float)
    return HistoryChunk([f"t{i}" for i in range(start, start + n)], np.full(n, 2.0), ("a", "b"),
                        np.stack([idx, -idx], 1), ("y",), idx[:, None] * 10)


def mixed_chunks() -> list[HistoryChunk]:
    """Two chunks with other signals, extreme magnitudes, a quoted timestamp and a missing measured value."""
    rng = np.random.default_rng(5)
    measured = rng.normal(size=(7, 2)) * 1e-6
    measured[2, 1] = np.nan
    plain = HistoryChunk([f"t{i}" for i in range(5)], rng.random(5), ("a", "b"), rng.normal(size=(5, 2)) * 1e6,
                         ("y", "z"), rng.normal(size=(5, 2)))
    with_actual = HistoryChunk(["t,5 \"quoted\""] + [f"t{i}" for i in range(6, 12)], rng.random(7), ("a",),
                               rng.normal(size=(7, 1)), ("y", "z"), rng.normal(size=(7, 2)), measured)
    return [plain, with_actual]


def exported_samples(chunks: list[HistoryChunk]) -> list[dict]:
    """The samples of the history's JSON export."""
    return json.loads(history_json("s", chunks))["samples"]
