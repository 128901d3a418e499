"""The ingress's view of the store session shards (one Ray call per cart change, none per frame)."""

from __future__ import annotations

from serve_app.settings import AppSettings
from serve_app.shards import shard_actors, shard_index
from serve_app.store.session_shard import StoreSessionShard


class StoreSessions:
    """Kiosk sessions by id, each held by one of `session_shards` named actors."""

    def __init__(self, name_prefix: str, settings: AppSettings, mongo_uri: str):
        self._actors = shard_actors(StoreSessionShard, f"{name_prefix}-store-sessions", settings, mongo_uri)

    def _actor(self, session_id: str):
        return self._actors[shard_index(session_id, len(self._actors))]

    async def open(self, session_id: str) -> dict:
        return await self._actor(session_id).open.remote(session_id)

    async def get(self, session_id: str) -> dict | None:
        return await self._actor(session_id).get.remote(session_id)

    async def set_user(self, session_id: str, user: dict) -> dict:
        return await self._actor(session_id).set_user.remote(session_id, user)

    async def add(self, session_id: str, product: dict, units: int) -> dict:
        return await self._actor(session_id).add.remote(session_id, product, units)

    async def remove(self, session_id: str, index: int) -> dict | None:
        return await self._actor(session_id).remove.remote(session_id, index)

    async def checkout(self, session_id: str) -> tuple[dict | None, str | None]:
        return await self._actor(session_id).checkout.remote(session_id)
