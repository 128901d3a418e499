"""The catalogue as kiosk connections read it: products by detector class, cached per ingress replica."""

from __future__ import annotations

import asyncio
import time

from serve_app.store.database import StoreDatabase


class Catalogue:
    """Products by `yolo_class_id`, re-read from the database every `refresh_s` or after `invalidate()`."""

    def __init__(self, db: StoreDatabase, refresh_s: float):
        self.db, self.refresh_s = db, refresh_s
        self._loaded_at, self._by_class = float("-inf"), {}

    async def by_class(self) -> dict[int, dict]:
        """{detector class: product}."""
        if time.monotonic() - self._loaded_at > self.refresh_s:
            self._by_class = await asyncio.to_thread(self.db.products_by_class)
            self._loaded_at = time.monotonic()
        return self._by_class

    def invalidate(self) -> None:
        """Read the database again on the next call (after a product changed on this replica)."""
        self._loaded_at = float("-inf")
