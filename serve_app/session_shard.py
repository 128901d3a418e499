"""Session shard actor: holds many twin sessions (config, stats, bounded history) in one process.

A Ray actor is a process, so one actor per session would not scale; each shard holds every session
whose id hashes to it. The ingress sends it batched events (rows predicted, disconnects) a few times a
second, so the shard is off the per-message path. Sessions are dropped `ttl_s` after their disconnect.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class HistoryChunk:
    """Consecutive samples of one session, all predicted with the same signal lists."""

    timestamps: list[str]
    latency_ms: np.ndarray  # [k]
    boundary_signals: tuple[str, ...]
    boundary: np.ndarray  # [k, n_boundary]
    target_signals: tuple[str, ...]
    predictions: np.ndarray  # [k, n_target]

    def __len__(self) -> int:
        return len(self.timestamps)

    def drop_first(self, count: int) -> "HistoryChunk":
        return HistoryChunk(self.timestamps[count:], self.latency_ms[count:], self.boundary_signals,
                            self.boundary[count:], self.target_signals, self.predictions[count:])


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


class SessionShard:
    """Plain class; the ingress runs it as a named, restartable Ray actor (see session_store)."""

    def __init__(self, history_limit: int, ttl_s: float):
        self.history_limit = history_limit
        self.ttl_s = ttl_s
        self.sessions: dict[str, TwinSession] = {}

    def _reap(self) -> None:
        cutoff = time.time() - self.ttl_s
        expired = [s for s, v in self.sessions.items() if not v.connected and v.disconnected_at < cutoff]
        for sid in expired:
            del self.sessions[sid]

    def open(self, session_id: str, config: dict, resume: bool) -> dict | None:
        """Create (resume=False) or take back (resume=True) a session; None when there is none to resume."""
        self._reap()
        session = self.sessions.get(session_id)
        if resume:
            if session is None:
                return None
            session.config, session.connected, session.disconnected_at = config, True, None
        else:
            session = self.sessions[session_id] = TwinSession(session_id, config, time.time())
        return session.summary()

    def apply(self, events: list[tuple]) -> None:
        """Apply ingress events in order: ("rows", sid, HistoryChunk), ("config", sid, dict), ("close", sid)."""
        for event in events:
            session = self.sessions.get(event[1])
            if session is None:
                continue
            kind = event[0]
            if kind == "rows":
                self._append(session, event[2])
            elif kind == "config":
                session.config = event[2]
            elif kind == "close":
                session.connected, session.disconnected_at = False, time.time()
        self._reap()

    def _append(self, session: TwinSession, chunk: HistoryChunk) -> None:
        session.predictions_count += len(chunk)
        session.latency_sum_ms += float(chunk.latency_ms.sum())
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

    def history(self, session_id: str) -> list[HistoryChunk] | None:
        self._reap()
        session = self.sessions.get(session_id)
        return None if session is None else list(session.history)
