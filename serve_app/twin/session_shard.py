"""Session shard actor: holds many twin sessions (config, stats, bounded history) in one process.

A Ray actor is a process, so one actor per session would not scale; each shard holds every session
whose id hashes to it. Ingress replicas send it batched events (rows predicted, configs, alerts,
disconnects) a few times a second, so the shard is off the per-message path.

Lifecycle:
- A session belongs to one connection at a time (its owner: ingress replica and connection id). A
  newer connection that resumes it takes it over; the older one is told on its replica's next flush
  and closed. Events of the older connection still count (nothing is lost); its close does not.
- Four times a second a replica sends its open connections: a session whose owner is not among them is
  disconnected, and one whose owner replica has not flushed for `LIVENESS_S` (it crashed) too. No
  session stays "connected" because a close never arrived.
- Sessions are dropped `session_ttl_s` after their disconnect.
- Reads can wait until every live replica has flushed what it held at a given moment (`behind`), so a
  client reads its own writes whichever replica serves the read.

With a MongoDB URI, sessions (config, counters) go to `twin_sessions` and their samples to the history
log (`twin_history`), in one bulk write each every `session_persist_interval_s`: a shard that Ray restarts
loses at most that interval. It restores a session from MongoDB on its first use (an event, a read or a
resume).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from deployments.shared.mongo import connect
from serve_app.settings import AppSettings
from serve_app.twin.history_log import HistoryChunk, HistoryLog, newest

ALERTS_KEPT = 1000  # alerts kept per session (all of them also go to MongoDB)
REQUEST_IDS_KEPT = 256  # a session remembers its newest request ids this far back (a client retries what was in flight)
LIVENESS_S = 10.0  # a replica silent this long (it flushes every few hundred ms) is taken for dead
STALE_RECORD_S = 3600.0  # persisted sessions untouched this long (and past their TTL) are deleted
RECORD_REFRESH_S = 10.0  # a session record whose only change is its counters is rewritten this often
PERSISTED = ("session_id", "config", "connected_at", "connected", "disconnected_at", "predictions_count",
             "latency_sum_ms", "owner", "creator", "request_ids", "monitor_state")
logger = logging.getLogger("streamforge.sessions")


class Event(NamedTuple):
    """What an ingress replica tells a shard: rows (a HistoryChunk, with the ids of the requests that
    produced it), config (a dict), alerts (a list of alert records), monitor (the residual monitor's
    state) or close, of one session, sent by one connection."""

    kind: str
    session_id: str
    payload: object = None
    connection: str | None = None
    request_ids: tuple = ()


@dataclass
class _Replica:
    seen_at: float  # when it last flushed
    watermark: float = 0.0  # it has sent everything it held at this time


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
    owner: tuple[str, str] = ("", "")  # (ingress replica, connection) that holds the session now
    creator: str = ""  # identity of the client that opened it (see web.auth.Principal.identity)
    written: int = 0  # samples of this session written to the history log
    request_ids: deque = field(default_factory=lambda: deque(maxlen=REQUEST_IDS_KEPT))  # newest recorded requests
    monitor_state: dict | None = None  # ResidualMonitor.state() of the owner connection's monitor
    record_written_at: float = 0.0  # when its record (PERSISTED) last went to MongoDB

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

    def record(self) -> dict:
        """What MongoDB keeps of the session besides its history (see TwinSession.restored)."""
        return {k: list(self.request_ids) if k == "request_ids" else getattr(self, k) for k in PERSISTED}

    @classmethod
    def restored(cls, doc: dict) -> TwinSession:
        """A session back from its MongoDB record (history not included)."""
        session = cls(**{k: doc[k] for k in PERSISTED if k in doc and k != "request_ids"})
        session.owner = tuple(session.owner)
        session.request_ids.extend(doc.get("request_ids", ()))
        return session

    def resumed(self) -> dict:
        """What a connection resuming the session continues from: its summary, the residual monitor's state
        and the ids of requests already recorded."""
        return {**self.summary(), "monitor_state": self.monitor_state, "request_ids": list(self.request_ids)}

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
    """Plain class; the ingress runs it as a named, restartable Ray actor (see serve_app.twin.sessions)."""

    def __init__(self, settings: AppSettings, mongo_uri: str | None = None):
        self.sessions: dict[str, TwinSession] = {}
        self.records = self.log = None
        if mongo_uri:
            database = connect(mongo_uri)["streamforge"]
            self.records = database.twin_sessions
            self.records.create_index("session_id", unique=True)
            self.log = HistoryLog(database)
        self.configure(settings)
        self.replicas: dict[str, _Replica] = {}
        self.taken_over: dict[str, set[str]] = {}  # replica -> its connections whose session moved on
        self._dirty: set[str] = set()  # sessions changed since the last write
        self._records_due: set[str] = set()  # those whose record changed besides its counters
        self._started_at = time.time()
        self._persisted_at = time.monotonic()
        self._cleaned_at = 0.0

    def configure(self, settings: AppSettings) -> None:
        """Take new settings (a redeploy with other `args`); sessions are kept."""
        self.history_limit = settings.twin.history_limit
        self.ttl_s = settings.twin.session_ttl_s
        self.persist_interval_s = settings.sessions.persist_interval_s

    # lifecycle -----------------------------------------------------------------------------------------
    def _session(self, session_id: str) -> TwinSession | None:
        """The session, restored from MongoDB on first use after a restart; None if unknown or expired."""
        return self.sessions.get(session_id) or self._restore(session_id)

    def _changed(self, session_id: str, record: bool = True) -> None:
        """Mark the session for the next write: its new samples, and its record if `record` (else only
        its counters changed, which the history log also holds)."""
        self._dirty.add(session_id)
        if record:
            self._records_due.add(session_id)

    def _disconnect(self, session: TwinSession, at: float) -> None:
        if session.connected:
            session.connected, session.disconnected_at = False, at
            self._changed(session.session_id)

    def _reap(self) -> None:
        now = time.time()
        for session in self.sessions.values():  # owners whose replica went silent: it crashed
            replica = self.replicas.get(session.owner[0])
            last_seen = replica.seen_at if replica else self._started_at
            if session.connected and last_seen < now - LIVENESS_S:
                self._disconnect(session, now)  # resumable for session_ttl_s from now, when it was noticed
        expired = [s for s, v in self.sessions.items() if not v.connected and v.disconnected_at < now - self.ttl_s]
        for sid in expired:
            del self.sessions[sid]
            self._dirty.discard(sid)
            self._records_due.discard(sid)
        if self.records is None:
            return
        try:
            if expired:
                self.records.delete_many({"session_id": {"$in": expired}})
                self.log.delete(expired)
            if now - self._cleaned_at > 60:  # records of sessions no shard holds any more (e.g. lost in a crash)
                stale = now - max(self.ttl_s, STALE_RECORD_S)
                gone = [d["session_id"] for d in self.records.find({"persisted_at": {"$lt": stale}}, {"session_id": 1})]
                self.records.delete_many({"session_id": {"$in": gone}})
                self.log.delete(gone)
                self._cleaned_at = now
        except PyMongoError as exc:
            logger.warning("twin session records not cleaned up: %s", exc)

    def _persist_changed(self, force: bool = False) -> None:
        """Write changed sessions' new samples and changed records to MongoDB, at most every
        `persist_interval_s` (a record whose only change is its counters every RECORD_REFRESH_S: a restored
        session takes its count from the history log); while MongoDB is unreachable they stay marked and
        are written later."""
        if self.records is None:
            self._dirty.clear()
            self._records_due.clear()
            return
        clock = time.monotonic()
        if not self._dirty or (not force and clock - self._persisted_at < self.persist_interval_s):
            return
        self._persisted_at = clock
        due = [self.sessions[sid] for sid in self._dirty if sid in self.sessions]
        appended = {}
        for session in due:
            new = min(session.predictions_count - session.written, session.history_rows)
            if new > 0:
                appended[session.session_id] = (session.predictions_count - new, newest(session.history, new))
        now = time.time()
        records = [s for s in due if s.session_id in self._records_due or now - s.record_written_at >= RECORD_REFRESH_S]
        writes = [UpdateOne({"session_id": s.session_id}, {"$set": {**s.record(), "persisted_at": now}}, upsert=True)
                  for s in records]
        try:
            self.log.write(appended, self.history_limit)
            if writes:
                self.records.bulk_write(writes, ordered=False)
        except PyMongoError as exc:
            logger.warning("twin sessions not persisted, will retry: %s", exc)
            return
        for session in due:
            session.written = session.predictions_count
        for session in records:
            session.record_written_at = now
        self._dirty.clear()
        self._records_due.clear()

    def _restore(self, session_id: str) -> TwinSession | None:
        """A session this shard lost (a restart) back from MongoDB, with its history, if not expired."""
        if self.records is None:
            return None
        doc = self.records.find_one({"session_id": session_id}, {"_id": 0})
        if doc is None or (not doc["connected"] and doc["disconnected_at"] < time.time() - self.ttl_s):
            return None
        session = TwinSession.restored(doc)
        chunks, written = self.log.read(session_id, self.history_limit)
        session.history.extend(chunks)
        session.history_rows = sum(len(c) for c in chunks)
        # samples written after the last counters: their counts come from the history log
        session.predictions_count = session.written = max(session.predictions_count, written)
        self.sessions[session_id] = session
        return session

    def _visible(self, session_id: str, viewer: str | None) -> TwinSession | None:
        """The session if `viewer` may see it (None: every session is visible)."""
        session = self._session(session_id)
        return session if session is not None and viewer in (None, session.creator) else None

    def open(self, session_id: str, config: dict, resume: bool, owner: tuple[str, str] = ("", ""),
             creator: str = "", viewer: str | None = None) -> dict | None:
        """Create (resume=False) or take back (resume=True) a session for the connection `owner`, on behalf
        of the client `creator` (who may see `viewer`'s sessions); None when there is none to resume.
        Resuming a session another connection holds takes it over."""
        self._reap()
        self._seen(owner[0])
        if resume:
            session = self._visible(session_id, viewer)
            if session is None:
                return None
            if session.connected and session.owner != owner and session.owner[1]:
                self.taken_over.setdefault(session.owner[0], set()).add(session.owner[1])
                logger.info("twin session %s taken over by a newer connection", session_id)
            session.config, session.connected, session.disconnected_at = config, True, None
        else:
            session = self.sessions[session_id] = TwinSession(session_id, config, time.time(), creator=creator)
        session.owner = owner
        self._changed(session_id)
        self._persist_changed(force=True)  # a new session is durable before its first reply
        return session.resumed()

    def _seen(self, replica: str, taken_at: float | None = None) -> None:
        state = self.replicas.setdefault(replica, _Replica(time.time()))
        state.seen_at = time.time()
        if taken_at is not None:
            state.watermark = max(state.watermark, taken_at)

    def apply(self, events: list[tuple], replica: str = "", taken_at: float | None = None,
              alive: dict[str, str] | None = None) -> list[str]:
        """Apply a replica's events in order (see Event); `alive` = {session: connection} of the replica's
        open connections to this shard's sessions (None: not sent with this flush), `taken_at` when it took
        these events. Returns the
        replica's connections whose session a newer connection took over."""
        self._seen(replica, taken_at)
        for event in (Event(*e) for e in events):
            session = self._session(event.session_id)
            if session is None:
                continue
            if event.kind == "rows":
                self._append(session, event.payload)
                session.request_ids.extend(event.request_ids)
            elif event.kind == "monitor":
                if event.connection == session.owner[1]:  # not a connection whose session was taken over
                    session.monitor_state = event.payload
            elif event.kind == "config":
                session.config = event.payload
            elif event.kind == "alerts":
                session.alerts.extend(event.payload)
            elif event.kind == "close" and event.connection in (None, session.owner[1]):
                self._disconnect(session, time.time())
            self._changed(session.session_id, record=event.kind != "rows" or bool(event.request_ids))
        if alive is not None:
            self._reconcile(replica, alive)
        self._persist_changed()
        self._reap()
        return sorted(self.taken_over.pop(replica, ()))

    def _reconcile(self, replica: str, alive: dict[str, str]) -> None:
        """Connected exactly when the owner connection is open on its replica."""
        for session_id, connection in alive.items():
            session = self._session(session_id)
            if session is not None and session.owner == (replica, connection) and not session.connected:
                session.connected, session.disconnected_at = True, None
                self._changed(session_id)
        for session in self.sessions.values():
            if session.owner[0] == replica and alive.get(session.session_id) != session.owner[1]:
                self._disconnect(session, time.time())

    def behind(self, moment: float) -> bool:
        """Whether a live replica may still hold events from before `moment` (it has not flushed since)."""
        now = time.time()
        return any(r.watermark < moment for r in self.replicas.values() if r.seen_at > now - LIVENESS_S)

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
                session.history[0] = oldest.rows(excess)
                session.history_rows -= excess

    def summaries(self, viewer: str | None = None) -> list[dict]:
        """Summaries of the sessions held (connected or within their retention time) that `viewer` may see."""
        self._reap()
        return [s.summary() for s in self.sessions.values() if viewer in (None, s.creator)]

    def visible(self, session_id: str, viewer: str | None = None) -> bool:
        """Whether the session is held (or restorable) and `viewer` may see it."""
        return self._visible(session_id, viewer) is not None

    def monitoring(self, session_id: str, viewer: str | None = None) -> dict | None:
        """Residual statistics and alerts of a session (TwinSession.monitoring); None when unknown."""
        self._reap()
        session = self._visible(session_id, viewer)
        return None if session is None else session.monitoring()

    def span(self, session_id: str, viewer: str | None = None) -> list[str] | None:
        """Timestamps of the first and last sample kept ([] before the first); None when unknown, expired
        or not `viewer`'s."""
        self._reap()
        session = self._visible(session_id, viewer)
        if session is None:
            return None
        chunks = [c for c in session.history if len(c)]
        return [chunks[0].timestamps[0], chunks[-1].timestamps[-1]] if chunks else []

    def history(self, session_id: str, viewer: str | None = None) -> list[HistoryChunk] | None:
        """The session's last `history_limit` samples; None when unknown, expired or not `viewer`'s."""
        self._reap()
        session = self._visible(session_id, viewer)
        return None if session is None else list(session.history)
