"""The ingress's view of the session shards: routing by session id and batched, ordered event flushes."""

from __future__ import annotations

import asyncio
import logging
import time

from serve_app.twin.session_shard import HistoryChunk, SessionShard
from serve_app.settings import AppSettings
from serve_app.shards import shard_actors, shard_index

logger = logging.getLogger("streamforge.sessions")
TICK_S = 1.0  # shards hear from the ingress at least this often


def _joined_rows(events: list[tuple]) -> list[tuple]:
    """The same events with each session's consecutive "rows" chunks joined into one (fewer objects to
    send and apply); the order of every session's events is kept."""
    out: list[tuple] = []
    groups: list[tuple[int, list[HistoryChunk]]] = []  # (slot in out, chunks joined there)
    open_group: dict[str, list[HistoryChunk]] = {}  # session -> the chunks its next rows may join
    for event in events:
        kind, session_id = event[0], event[1]
        chunks = open_group.get(session_id)
        if kind == "rows" and chunks is not None and chunks[0].extends(event[2]):
            chunks.append(event[2])
            continue
        if kind == "rows":
            open_group[session_id] = [event[2]]
            groups.append((len(out), open_group[session_id]))
        else:
            open_group.pop(session_id, None)
        out.append(event)
    for slot, chunks in groups:
        if len(chunks) > 1:
            out[slot] = ("rows", out[slot][1], HistoryChunk.joined(chunks))
    return out


class SessionStore:
    """Routes each session to one of `shards` named actors and batches writes to them.

    Writes (`record`, `update_config`, `close`) are queued per shard and sent in order every
    `session_flush_interval_s` (or sooner once `flush_rows` samples wait); reads and `open` flush the shard first,
    so they always see this ingress replica's own writes.
    """

    def __init__(self, name_prefix: str, settings: AppSettings, mongo_uri: str | None = None,
                 flush_rows: int = 4096):
        self._actors = shard_actors(SessionShard, f"{name_prefix}-sessions", settings, mongo_uri)
        shards = settings.session_shards
        self._pending: list[list[tuple]] = [[] for _ in range(shards)]
        self._pending_rows = [0] * shards
        self._locks = [asyncio.Lock() for _ in range(shards)]
        self._flush_interval_s = settings.session_flush_interval_s
        self._flush_rows = flush_rows
        self._flusher: asyncio.Task | None = None

    def _shard(self, session_id: str) -> int:
        return shard_index(session_id, len(self._actors))

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        last_tick = time.monotonic()
        while True:
            await asyncio.sleep(self._flush_interval_s)
            tick = time.monotonic() - last_tick >= TICK_S  # also when idle: lets shards persist and expire
            if tick:
                last_tick = time.monotonic()
            try:
                await asyncio.gather(*(self._flush_shard(i, tick) for i in range(len(self._actors))))
            except Exception:  # a shard restarting must not stop the flusher
                logger.exception("session flush failed")

    async def _flush_shard(self, index: int, even_if_empty: bool = False) -> None:
        async with self._locks[index]:
            events, self._pending[index] = self._pending[index], []
            self._pending_rows[index] = 0
            if events or even_if_empty:
                await self._actors[index].apply.remote(_joined_rows(events))

    async def flush(self) -> None:
        """Send every queued event now."""
        await asyncio.gather(*(self._flush_shard(i) for i in range(len(self._actors))))

    def _queue(self, session_id: str, event: tuple, rows: int = 0) -> None:
        self._start_flusher()
        index = self._shard(session_id)
        self._pending[index].append(event)
        self._pending_rows[index] += rows
        if self._pending_rows[index] >= self._flush_rows:
            asyncio.get_running_loop().create_task(self._flush_shard(index))

    async def open(self, session_id: str, config: dict, resume: bool) -> dict | None:
        """Create or resume a session (see SessionShard.open)."""
        self._start_flusher()
        index = self._shard(session_id)
        await self._flush_shard(index)
        return await self._actors[index].open.remote(session_id, config, resume)

    def record(self, session_id: str, chunk: HistoryChunk) -> None:
        self._queue(session_id, ("rows", session_id, chunk), len(chunk))

    def update_config(self, session_id: str, config: dict) -> None:
        self._queue(session_id, ("config", session_id, config))

    def record_alerts(self, session_id: str, alerts: list[dict]) -> None:
        self._queue(session_id, ("alerts", session_id, alerts))

    def close(self, session_id: str) -> None:
        self._queue(session_id, ("close", session_id))

    async def summaries(self) -> list[dict]:
        """Summaries of every session kept by any shard (connected or within its retention time)."""
        await self.flush()
        parts = await asyncio.gather(*(a.summaries.remote() for a in self._actors))
        return [s for part in parts for s in part]

    async def monitoring(self, session_id: str) -> dict | None:
        """Residual statistics and recent alerts of a session; None when unknown."""
        index = self._shard(session_id)
        await self._flush_shard(index)
        return await self._actors[index].monitoring.remote(session_id)

    async def history(self, session_id: str) -> list[HistoryChunk] | None:
        index = self._shard(session_id)
        await self._flush_shard(index)
        return await self._actors[index].history.remote(session_id)
