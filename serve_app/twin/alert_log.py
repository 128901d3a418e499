"""Twin alerts in MongoDB: written off the message path, listed by `GET /api/v1/alerts`."""

from __future__ import annotations

import asyncio
import logging

from pymongo import DESCENDING

from deployments.shared.mongo import connect
from serve_app.web.wire import now_iso

logger = logging.getLogger("streamforge.alerts")


class AlertLog:
    """The `alerts` collection: one document per alert opened or cleared."""

    def __init__(self, uri: str, name: str = "streamforge"):
        self.collection = connect(uri)[name].alerts
        self._writes: set[asyncio.Task] = set()

    def ensure_schema(self) -> None:
        self.collection.create_index([("created_at", DESCENDING)])
        self.collection.create_index([("session_id", DESCENDING), ("created_at", DESCENDING)])

    def record(self, alerts: list[dict]) -> None:
        """Insert in the background; a database outage is logged, never raised into the stream."""
        task = asyncio.get_running_loop().create_task(self._insert([dict(a) for a in alerts]))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _insert(self, alerts: list[dict]) -> None:
        try:
            await asyncio.to_thread(self.collection.insert_many, alerts, ordered=True)
        except Exception as exc:
            logger.error("could not store %d alerts: %s", len(alerts), exc)

    async def flush(self) -> None:
        """Wait for the writes in flight (tests and shutdown)."""
        await asyncio.gather(*list(self._writes), return_exceptions=True)

    def acknowledge(self, session_id: str, signal: str, kind: str, by: str) -> bool:
        """Mark the latest opening of this alert acknowledged (by whom, when); False when there is none."""
        latest = self.collection.find_one({"session_id": session_id, "signal": signal, "kind": kind, "opened": True},
                                          sort=[("created_at", DESCENDING)])
        if latest is None:
            return False
        self.collection.update_one({"_id": latest["_id"]}, {"$set": {"acknowledged_at": now_iso(),
                                                                     "acknowledged_by": by}})
        return True

    def recent(self, limit: int, session_id: str | None = None, signal: str | None = None,
               kind: str | None = None, among_sessions: list[str] | None = None) -> list[dict]:
        """Newest first, optionally filtered (`among_sessions`: only alerts of these sessions)."""
        query = {k: v for k, v in (("session_id", session_id), ("signal", signal), ("kind", kind)) if v is not None}
        if among_sessions is not None:
            query.setdefault("session_id", {"$in": among_sessions})
            if session_id is not None and session_id not in among_sessions:
                return []
        return list(self.collection.find(query, {"_id": 0}).sort("created_at", DESCENDING).limit(limit))
