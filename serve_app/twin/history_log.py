"""A session's history: chunks of consecutive samples, kept in memory by the shards and written through
to MongoDB (`twin_history`) in bounded batches, so a shard that dies loses at most one write interval.
Each write stores one document per session (its new samples joined, columnar), and a session's oldest
documents are deleted only once per `limit` samples it gains: MongoDB holds between `limit` and
2 x `limit` samples of a session, reads return the newest `limit`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymongo import ASCENDING, DeleteMany, InsertOne


@dataclass
class HistoryChunk:
    """Consecutive samples of one session, all predicted with the same signal lists."""

    timestamps: list[str]
    latency_ms: np.ndarray  # [k]
    boundary_signals: tuple[str, ...]
    boundary: np.ndarray  # [k, n_boundary]
    target_signals: tuple[str, ...]
    predictions: np.ndarray  # [k, n_target]
    actual: np.ndarray | None = None  # [k, n_target] measured targets (NaN where not measured), if sent

    def __len__(self) -> int:
        return len(self.timestamps)

    def same_signals(self, other: "HistoryChunk") -> bool:
        """Whether `other` holds the same boundary and target signals, in the same order."""
        return other.boundary_signals == self.boundary_signals and other.target_signals == self.target_signals

    def extends(self, other: "HistoryChunk") -> bool:
        """Whether `other` can be appended to this chunk (same signals, measured values in both or neither)."""
        return self.same_signals(other) and (other.actual is None) == (self.actual is None)

    @classmethod
    def joined(cls, chunks: list["HistoryChunk"]) -> "HistoryChunk":
        """One chunk holding `chunks` in order (each extends the first)."""
        if len(chunks) == 1:
            return chunks[0]
        first = chunks[0]
        return cls([t for c in chunks for t in c.timestamps], np.concatenate([c.latency_ms for c in chunks]),
                   first.boundary_signals, np.concatenate([c.boundary for c in chunks]), first.target_signals,
                   np.concatenate([c.predictions for c in chunks]),
                   None if first.actual is None else np.concatenate([c.actual for c in chunks]))

    def rows(self, start: int, stop: int | None = None) -> "HistoryChunk":
        """Samples start..stop (the arrays are views, not copies)."""
        part = slice(start, stop)
        return HistoryChunk(self.timestamps[part], self.latency_ms[part], self.boundary_signals,
                            self.boundary[part], self.target_signals, self.predictions[part],
                            None if self.actual is None else self.actual[part])

    def tail(self, count: int) -> "HistoryChunk":
        """The last `count` samples."""
        return self.rows(len(self) - count) if count < len(self) else self

    def to_document(self) -> dict:
        """For MongoDB: arrays as raw float64 bytes (exact, compact)."""
        return {
            "timestamps": self.timestamps,
            "latency_ms": self.latency_ms.astype(np.float64).tobytes(),
            "boundary_signals": list(self.boundary_signals),
            "boundary": self.boundary.astype(np.float64).tobytes(),
            "target_signals": list(self.target_signals),
            "predictions": self.predictions.astype(np.float64).tobytes(),
            "actual": None if self.actual is None else self.actual.astype(np.float64).tobytes(),
        }

    @classmethod
    def from_document(cls, doc: dict) -> "HistoryChunk":
        n, boundary, targets = len(doc["timestamps"]), tuple(doc["boundary_signals"]), tuple(doc["target_signals"])

        def array(name: str, width: int) -> np.ndarray:
            return np.frombuffer(bytes(doc[name]), np.float64).reshape(n, width).copy()
        return cls(list(doc["timestamps"]), np.frombuffer(bytes(doc["latency_ms"]), np.float64).copy(), boundary,
                   array("boundary", len(boundary)), targets, array("predictions", len(targets)),
                   None if doc["actual"] is None else array("actual", len(targets)))


def coalesced(chunks: list[HistoryChunk]) -> list[HistoryChunk]:
    """Consecutive chunks joined wherever one extends the one before (same signals)."""
    runs: list[list[HistoryChunk]] = []
    for chunk in chunks:
        if runs and runs[-1][0].extends(chunk):
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return [HistoryChunk.joined(run) for run in runs]


def newest(chunks, count: int) -> list[HistoryChunk]:
    """The last `count` samples of consecutive `chunks`, as chunks."""
    out: list[HistoryChunk] = []
    for chunk in reversed(chunks):
        if count <= 0:
            break
        out.append(chunk.tail(count))
        count -= len(out[-1])
    return out[::-1]


class HistoryLog:
    """The `twin_history` collection: one document per written chunk, `start` = the index of its first
    sample in its session (its count of predictions before it)."""

    def __init__(self, database):
        self.collection = database.twin_history
        self.collection.create_index([("session_id", ASCENDING), ("start", ASCENDING)])

    def write(self, appended: dict[str, tuple[int, list[HistoryChunk]]], limit: int) -> None:
        """Append {session: (start of its first new sample, new chunks)} in one bulk write; where a session
        passes a multiple of `limit` samples, delete what falls out of its last `limit`."""
        writes = []
        for session_id, (first, chunks) in appended.items():
            start = first
            for chunk in coalesced(chunks):
                writes.append(InsertOne({"session_id": session_id, "start": start, "end": start + len(chunk),
                                         **chunk.to_document()}))
                start += len(chunk)
            if limit and start // limit > first // limit:
                writes.append(DeleteMany({"session_id": session_id, "end": {"$lte": start - limit}}))
        if writes:
            self.collection.bulk_write(writes, ordered=True)

    def read(self, session_id: str, limit: int) -> tuple[list[HistoryChunk], int]:
        """The last `limit` samples written for a session, and how many samples it had in all."""
        docs = list(self.collection.find({"session_id": session_id}, {"_id": 0}).sort("start", ASCENDING))
        chunks, end = [], 0
        for doc in docs:
            if doc["start"] < end:  # written twice (a retried write): keep the first copy
                continue
            chunks.append(HistoryChunk.from_document(doc))
            end = doc["end"]
        return newest(chunks, limit), end

    def delete(self, session_ids: list[str]) -> None:
        self.collection.delete_many({"session_id": {"$in": session_ids}})
