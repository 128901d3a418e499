"""Session shard actor: holds many twin sessions (config, stats, bounded history) in one process.

A Ray actor is a process, so one actor per session would not scale; each shard holds every session
whose id hashes to it. The ingress sends it batched events (rows predicted, disconnects) a few times a
second, so the shard is off the per-message path. Sessions are dropped `session_ttl_s` after their
disconnect.

With a MongoDB URI each session's config and counters are also kept in the `twin_sessions` collection:
opened, reconfigured and closed sessions are written (one bulk write) every `persist_interval_s`,
sessions that only streamed every `counters_interval_s`. A shard that Ray restarts can so resume its
sessions (all but those opened within the last interval); their history (the last samples) is not
persisted.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from deployments.mongo import connect
from serve_app.settings import AppSettings

ALERTS_KEPT = 1000  # alerts kept per session (all of them also go to MongoDB)

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

    def extends(self, other: "HistoryChunk") -> bool:
        """Whether `other` can be appended to this chunk (same signals, measured values in both or neither)."""
        return (other.boundary_signals == self.boundary_signals and other.target_signals == self.target_signals
                and (other.actual is None) == (self.actual is None))

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

    def drop_first(self, count: int) -> "HistoryChunk":
        return HistoryChunk(self.timestamps[count:], self.latency_ms[count:], self.boundary_signals,
                            self.boundary[count:], self.target_signals, self.predictions[count:],
                            None if self.actual is None else self.actual[count:])


@dataclass
class TwinSession:
    """One client's session: what `config` set, running stats and the last `history_limit` samples."""

    session_id: str
    config: dict
    connected_at: float
    connected: bool = True
    disconnected_at: float | None = None
    predictions_count: int = 0
    latency_sum_ms: float = 0.0
    history: deque = field(default_factory=deque)
    history_rows: int = 0
    residuals: dict[str, list[float]] = field(default_factory=dict)  # target -> [count, sum, sum of squares]
    alerts: deque = field(default_factory=lambda: deque(maxlen=ALERTS_KEPT))

    def add_residuals(self, chunk: HistoryChunk) -> None:
        """Fold the chunk's measured - predicted values into the running per-target statistics."""
        gap = chunk.actual - chunk.predictions
        for j, target in enumerate(chunk.target_signals):
            values = gap[:, j][~np.isnan(gap[:, j])]
            if len(values):
                stats = self.residuals.setdefault(target, [0, 0.0, 0.0])
                stats[0] += len(values)
                stats[1] += float(values.sum())
                stats[2] += float((values * values).sum())

    def monitoring(self) -> dict:
        """Running residual statistics per target and the recent alerts."""
        stats = {}
        for target, (count, total, squares) in self.residuals.items():
            mean = total / count
            stats[target] = {"count": count, "mean": mean, "std": max(squares / count - mean * mean, 0.0) ** 0.5,
                             "rms": (squares / count) ** 0.5}
        return {"residual_stats": stats, "alerts": list(self.alerts)}

    def summary(self) -> dict:
        return {
            "session_id": self.session_id,
            "ensemble_name": self.config.get("ensemble_name"),
            "mode": self.config.get("mode"),
            "connected": self.connected,
            "connected_at": self.connected_at,
            "predictions_count": self.predictions_count,
            "latency_sum_ms": self.latency_sum_ms,
            "history_samples": self.history_rows,
        }


logger = logging.getLogger("streamforge.sessions")
STALE_RECORD_S = 3600.0  # persisted sessions untouched this long (and past their TTL) are deleted
PERSISTED = ("session_id", "config", "connected_at", "connected", "disconnected_at", "predictions_count",
             "latency_sum_ms")


class SessionShard:
    """Plain class; the ingress runs it as a named, restartable Ray actor (see serve_app.twin.sessions)."""

    def __init__(self, settings: AppSettings, mongo_uri: str | None = None,
                 persist_interval_s: float = 1.0, counters_interval_s: float = 30.0):
        self.history_limit = settings.history_limit
        self.ttl_s = settings.session_ttl_s
        self.sessions: dict[str, TwinSession] = {}
        self.records = None
        if mongo_uri:
            self.records = connect(mongo_uri)["streamforge"].twin_sessions
            self.records.create_index("session_id", unique=True)
        self.persist_interval_s, self.counters_interval_s = persist_interval_s, counters_interval_s
        self._dirty: set[str] = set()  # opened, reconfigured or closed since the last write
        self._streamed: set[str] = set()  # only new rows since the last write of their counters
        self._persisted_at = self._counted_at = time.monotonic()
        self._cleaned_at = 0.0

    def _reap(self) -> None:
        now = time.time()
        expired = [s for s, v in self.sessions.items() if not v.connected and v.disconnected_at < now - self.ttl_s]
        for sid in expired:
            del self.sessions[sid]
        if self.records is None:
            return
        try:
            if expired:
                self.records.delete_many({"session_id": {"$in": expired}})
            if now - self._cleaned_at > 60:  # records of sessions no shard holds any more (e.g. lost in a crash)
                self.records.delete_many({"persisted_at": {"$lt": now - max(self.ttl_s, STALE_RECORD_S)}})
                self._cleaned_at = now
        except PyMongoError as exc:
            logger.warning("twin session records not cleaned up: %s", exc)

    def _persist_changed(self) -> None:
        """Write the changed sessions to MongoDB in one bulk write, at most every `persist_interval_s`;
        while MongoDB is unreachable they stay marked and are written later."""
        if self.records is None:
            self._dirty.clear()
            self._streamed.clear()
            return
        clock = time.monotonic()
        due = set()
        if self._dirty and clock - self._persisted_at >= self.persist_interval_s:
            due |= self._dirty
            self._persisted_at = clock
        if self._streamed and clock - self._counted_at >= self.counters_interval_s:
            due |= self._streamed
            self._counted_at = clock
        if not due:
            return
        now = time.time()
        writes = [UpdateOne({"session_id": sid},
                            {"$set": {**{k: getattr(self.sessions[sid], k) for k in PERSISTED}, "persisted_at": now}},
                            upsert=True) for sid in due if sid in self.sessions]
        try:
            if writes:
                self.records.bulk_write(writes, ordered=False)
        except PyMongoError as exc:
            logger.warning("twin sessions not persisted, will retry: %s", exc)
            return
        self._dirty -= due
        self._streamed -= due

    def _restore(self, session_id: str) -> TwinSession | None:
        """A session this shard lost (a restart) back from MongoDB, if it has not expired."""
        if self.records is None:
            return None
        doc = self.records.find_one({"session_id": session_id}, {"_id": 0})
        if doc is None or (not doc["connected"] and doc["disconnected_at"] < time.time() - self.ttl_s):
            return None
        session = TwinSession(**{k: doc[k] for k in PERSISTED})
        self.sessions[session_id] = session
        return session

    def open(self, session_id: str, config: dict, resume: bool) -> dict | None:
        """Create (resume=False) or take back (resume=True) a session; None when there is none to resume."""
        self._reap()
        session = self.sessions.get(session_id)
        if resume:
            session = session or self._restore(session_id)
            if session is None:
                return None
            session.config, session.connected, session.disconnected_at = config, True, None
        else:
            session = self.sessions[session_id] = TwinSession(session_id, config, time.time())
        self._dirty.add(session_id)
        self._persist_changed()
        return session.summary()

    def apply(self, events: list[tuple]) -> None:
        """Apply ingress events in order: ("rows", sid, HistoryChunk), ("config", sid, dict), ("close", sid),
        ("alerts", sid, [alert record])."""
        for event in events:
            session = self.sessions.get(event[1])
            if session is None:
                continue
            kind = event[0]
            if kind == "rows":
                self._append(session, event[2])
                self._streamed.add(session.session_id)
            elif kind == "config":
                session.config = event[2]
                self._dirty.add(session.session_id)
            elif kind == "alerts":
                session.alerts.extend(event[2])
            elif kind == "close":
                session.connected, session.disconnected_at = False, time.time()
                self._dirty.add(session.session_id)
        self._persist_changed()
        self._reap()

    def _append(self, session: TwinSession, chunk: HistoryChunk) -> None:
        session.predictions_count += len(chunk)
        session.latency_sum_ms += float(chunk.latency_ms.sum())
        if chunk.actual is not None:
            session.add_residuals(chunk)
        if self.history_limit <= 0:
            return
        session.history.append(chunk)
        session.history_rows += len(chunk)
        while session.history_rows > self.history_limit:
            excess = session.history_rows - self.history_limit
            oldest = session.history[0]
            if len(oldest) <= excess:
                session.history.popleft()
                session.history_rows -= len(oldest)
            else:
                session.history[0] = oldest.drop_first(excess)
                session.history_rows -= excess

    def summaries(self) -> list[dict]:
        self._reap()
        return [s.summary() for s in self.sessions.values()]

    def monitoring(self, session_id: str) -> dict | None:
        """Residual statistics and alerts of a session (TwinSession.monitoring); None when unknown."""
        self._reap()
        session = self.sessions.get(session_id)
        return None if session is None else session.monitoring()

    def history(self, session_id: str) -> list[HistoryChunk] | None:
        self._reap()
        session = self.sessions.get(session_id)
        return None if session is None else list(session.history)
