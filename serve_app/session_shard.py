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
        """Apply ingress events in order: ("rows", sid, HistoryChunk), ("config", sid, dict), ("close", sid),
        ("alerts", sid, [alert record])."""
        for event in events:
            session = self.sessions.get(event[1])
            if session is None:
                continue
            kind = event[0]
            if kind == "rows":
                self._append(session, event[2])
            elif kind == "config":
                session.config = event[2]
            elif kind == "alerts":
                session.alerts.extend(event[2])
            elif kind == "close":
                session.connected, session.disconnected_at = False, time.time()
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
