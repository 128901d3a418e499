"""The ingress's view of the session shards: routing by session id, batched and ordered event flushes,
the replica's open connections (liveness, takeover), and reads that see every replica's writes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable, Protocol

from ray.exceptions import ActorUnavailableError

from serve_app.settings import AppSettings
from serve_app.shards import shard_actors, shard_index
from serve_app.twin.history_log import HistoryChunk
from serve_app.twin.session_shard import Event, SessionShard
from serve_app.web.auth import Principal

logger = logging.getLogger("streamforge.sessions")
TICK_S = 0.25  # shards hear from every replica at least this often (liveness, read watermarks)
MAX_PENDING_ROWS = 200_000  # per shard: beyond this, a shard that keeps failing loses the oldest events
READ_WAIT_S = 2.0  # a read waits at most this long for other replicas' flushes
RESTART_WAIT_S = 30.0  # a resume or read waits at most this long for a restarting shard


class MonitorState(Protocol):
    """What the store needs of a residual monitor (models.twin.monitor.ResidualMonitor)."""

    def state(self) -> dict: ...


def _joined_rows(events: list[Event]) -> list[Event]:
    """The same events with each session's consecutive "rows" chunks joined into one (fewer objects to
    send and apply); the order of every session's events is kept."""
    out: list[Event] = []
    groups: list[tuple[int, list[Event]]] = []  # (slot in out, rows events joined there)
    open_group: dict[str, list[Event]] = {}  # session -> the rows events its next rows may join
    for event in events:
        chunks = open_group.get(event.session_id)
        if event.kind == "rows" and chunks is not None and chunks[0].payload.extends(event.payload):
            chunks.append(event)
            continue
        if event.kind == "rows":
            open_group[event.session_id] = [event]
            groups.append((len(out), open_group[event.session_id]))
        else:
            open_group.pop(event.session_id, None)
        out.append(event)
    for slot, joined in groups:
        if len(joined) > 1:
            out[slot] = out[slot]._replace(payload=HistoryChunk.joined([e.payload for e in joined]),
                                           request_ids=tuple(i for e in joined for i in e.request_ids))
    return out


class SessionStore:
    """Routes each session to one of `session_shards` named actors and batches writes to them.

    Writes (`record`, `update_config`, `record_alerts`, `close`) are queued per shard and sent in order
    every `session_flush_interval_s` (or sooner once `flush_rows` samples wait); a failed send is retried
    with the next one. A session's residual monitor (`monitor_changed`) goes as its state at that moment
    with the first flush after `persist_interval_s` (the shard writes no more often) - with the next one
    when an alert opened or cleared -, with a read or resume, and with the connection's close. Reads, and
    resumes, flush first and wait until every other live replica has flushed too, so a client sees every
    reply it was sent and a resumed session continues from it.
    """

    def __init__(self, name_prefix: str, settings: AppSettings, mongo_uri: str | None = None,
                 flush_rows: int = 4096):
        self._actors = shard_actors(SessionShard, f"{name_prefix}-sessions", settings, mongo_uri)
        self._flush_interval_s = settings.sessions.flush_interval_s
        self._persist_interval_s = settings.sessions.persist_interval_s
        shards = settings.sessions.shards
        self.replica = uuid.uuid4().hex
        self._pending: list[list[Event]] = [[] for _ in range(shards)]
        self._pending_rows = [0] * shards
        self._locks = [asyncio.Lock() for _ in range(shards)]
        self._flush_rows = flush_rows
        self._flusher: asyncio.Task | None = None
        self._open: dict[str, tuple[str, Callable[[], None]]] = {}  # connection -> (session, on taken over)
        self._monitors: dict[tuple[str, str], MonitorState] = {}  # (session, connection) -> monitor changed
        self._monitors_sent = [0.0] * shards  # per shard: when monitor states last went (time.monotonic)
        self._monitors_due = [False] * shards  # per shard: an alert changed since

    def configure(self, settings: AppSettings) -> None:
        """New settings on a running replica, for this store and every shard (history_limit, session_ttl_s, ...)."""
        self._flush_interval_s = settings.sessions.flush_interval_s
        self._persist_interval_s = settings.sessions.persist_interval_s
        for actor in self._actors:
            actor.configure.remote(settings)

    def _shard(self, session_id: str) -> int:
        return shard_index(session_id, len(self._actors))

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        last_tick = time.monotonic()
        while True:
            await asyncio.sleep(min(self._flush_interval_s, TICK_S))
            tick = time.monotonic() - last_tick >= TICK_S  # also when idle: liveness, watermarks, expiry
            if tick:
                last_tick = time.monotonic()
            await asyncio.gather(*(self._flush_shard(i, tick) for i in range(len(self._actors))))

    async def _flush_shard(self, index: int, even_if_empty: bool = False, monitors_now: bool = False) -> None:
        """Send the shard's queued events (and its changed monitors' states when due, or `monitors_now`); on
        failure they go back to the front of the queue for the next flush. Ticks and reads (`even_if_empty`)
        also send this replica's open connections to the shard (liveness), which the flushes in between
        need not carry."""
        async with self._locks[index]:
            events, self._pending[index] = self._pending[index], []
            rows, self._pending_rows[index] = self._pending_rows[index], 0
            if (monitors_now or self._monitors_due[index]
                    or time.monotonic() - self._monitors_sent[index] >= self._persist_interval_s):
                events += self._monitor_states(index)
                self._monitors_sent[index], self._monitors_due[index] = time.monotonic(), False
            if not events and not even_if_empty:
                return
            alive = ({sid: conn for conn, (sid, _) in self._open.items() if self._shard(sid) == index}  # newest wins
                     if even_if_empty else None)
            try:
                taken_over = await self._actors[index].apply.remote(_joined_rows(events), self.replica, time.time(),
                                                                    alive)
            except Exception as exc:  # the shard is restarting: keep the events for the next try
                self._requeue(index, events, rows)
                logger.warning("session shard %d unreachable, %d events kept for the next flush: %s", index,
                               len(events), exc)
                return
        for connection in taken_over:
            self._taken_over(connection)

    def _monitor_states(self, index: int) -> list[Event]:
        """The shard's changed residual monitors, as `monitor` events holding their state now."""
        due = [key for key in self._monitors if self._shard(key[0]) == index]
        return [Event("monitor", session, self._monitors.pop((session, connection)).state(), connection)
                for session, connection in due]

    def _requeue(self, index: int, events: list[Event], rows: int) -> None:
        self._pending[index][:0] = events
        self._pending_rows[index] += rows
        while self._pending_rows[index] > MAX_PENDING_ROWS and self._pending[index]:
            dropped = self._pending[index].pop(0)
            if dropped.kind == "rows":
                self._pending_rows[index] -= len(dropped.payload)
                logger.error("session shard %d down too long: %d samples of session %s dropped from its history",
                             index, len(dropped.payload), dropped.session_id)

    def _taken_over(self, connection: str) -> None:
        if connection in self._open:
            self._open.pop(connection)[1]()

    async def flush(self) -> None:
        """Send every queued event and monitor state now."""
        await asyncio.gather(*(self._flush_shard(i, monitors_now=True) for i in range(len(self._actors))))

    async def _settled(self, indexes: list[int]) -> None:
        """Wait until the shards hold every event any live replica had queued before now."""
        moment = time.time()
        await asyncio.gather(*(self._flush_shard(i, even_if_empty=True, monitors_now=True) for i in indexes))
        deadline = time.monotonic() + READ_WAIT_S
        while time.monotonic() < deadline:
            behind = await asyncio.gather(*(_restarted(lambda i=i: self._actors[i].behind.remote(moment))
                                            for i in indexes))
            if not any(behind):
                return
            await asyncio.sleep(0.02)

    def _queue(self, event: Event, rows: int = 0) -> None:
        self._start_flusher()
        index = self._shard(event.session_id)
        self._pending[index].append(event)
        self._pending_rows[index] += rows
        if self._pending_rows[index] >= self._flush_rows:
            asyncio.get_running_loop().create_task(self._flush_shard(index))

    async def open(self, session_id: str, config: dict, resume: bool, connection: str,
                   on_taken_over: Callable[[], None], client: Principal) -> dict | None:
        """Create or resume a session for `connection` of `client` (see SessionShard.open): what it continues
        from (TwinSession.resumed), None when there is nothing to resume. `on_taken_over` is called if a newer
        connection resumes it later."""
        self._start_flusher()
        index = self._shard(session_id)
        if resume:
            await self._settled([index])
        else:
            await self._flush_shard(index)
        self._open[connection] = (session_id, on_taken_over)
        summary = await _restarted(lambda: self._actors[index].open.remote(
            session_id, config, resume, (self.replica, connection), client.identity, client.twin_viewer))
        if summary is None:
            self._open.pop(connection, None)
        return summary

    def record(self, session_id: str, connection: str, chunk: HistoryChunk, request_id: str | int | None = None
               ) -> None:
        """Rows predicted for the session; `request_id` (the request's `id`, if it had one) is remembered
        with them, so a retried request can be recognised after a resume."""
        ids = () if request_id is None else (request_id,)
        self._queue(Event("rows", session_id, chunk, connection, ids), len(chunk))

    def monitor_changed(self, session_id: str, connection: str, monitor: MonitorState, alerts_changed: bool) -> None:
        """The session's residual monitor moved on: its state goes with the first flush after
        `persist_interval_s`, or with the next one when an alert opened or cleared (so a resume never
        opens it again)."""
        self._start_flusher()
        self._monitors[(session_id, connection)] = monitor
        if alerts_changed:
            self._monitors_due[self._shard(session_id)] = True

    def update_config(self, session_id: str, connection: str, config: dict) -> None:
        self._queue(Event("config", session_id, config, connection))

    def record_alerts(self, session_id: str, connection: str, alerts: list[dict]) -> None:
        self._queue(Event("alerts", session_id, alerts, connection))

    def close(self, session_id: str, connection: str) -> None:
        """The connection ended (a session taken over by a newer connection stays connected)."""
        self._open.pop(connection, None)
        monitor = self._monitors.pop((session_id, connection), None)
        if monitor is not None:  # its last state goes before the close
            self._queue(Event("monitor", session_id, monitor.state(), connection))
        self._queue(Event("close", session_id, None, connection))

    async def summaries(self, viewer: str | None) -> list[dict]:
        """Summaries of the sessions kept by any shard (connected or within their retention time) that
        `viewer` may see (None: all)."""
        await self._settled(list(range(len(self._actors))))
        parts = await asyncio.gather(*(a.summaries.remote(viewer) for a in self._actors))
        return [s for part in parts for s in part]

    async def visible(self, session_id: str, viewer: str | None) -> bool:
        """Whether the session exists (or is kept) and `viewer` may see it."""
        return await self._actors[self._shard(session_id)].visible.remote(session_id, viewer)

    async def monitoring(self, session_id: str, viewer: str | None) -> dict | None:
        """Residual statistics and recent alerts of a session; None when unknown or not `viewer`'s."""
        index = self._shard(session_id)
        await self._settled([index])
        return await self._actors[index].monitoring.remote(session_id, viewer)

    async def span(self, session_id: str, viewer: str | None) -> list[str] | None:
        """Timestamps of the session's first and last kept sample ([] before the first); None when unknown,
        expired or not `viewer`'s."""
        index = self._shard(session_id)
        await self._settled([index])
        return await self._actors[index].span.remote(session_id, viewer)

    async def history(self, session_id: str, viewer: str | None) -> list[HistoryChunk] | None:
        """The session's last `history_limit` samples; None when unknown, expired or not `viewer`'s."""
        index = self._shard(session_id)
        await self._settled([index])
        return await self._actors[index].history.remote(session_id, viewer)


async def _restarted(call: Callable[[], Awaitable]):
    """`call()`'s result, called again while its shard is restarting (Ray restarts a shard whose process
    died within seconds), for at most RESTART_WAIT_S."""
    deadline = time.monotonic() + RESTART_WAIT_S
    while True:
        try:
            return await call()
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
