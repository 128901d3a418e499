"""The newest request ids a session has recorded, so a retried request is recorded once."""

from __future__ import annotations

from collections import deque
from typing import Iterable


class RecentIds:
    """At most `keep` ids, oldest forgotten first."""

    def __init__(self, keep: int):
        self._order: deque = deque()
        self._ids: set = set()
        self.keep = keep

    def add(self, request_id: str | int) -> bool:
        """Remember `request_id`; False when it was already remembered (a retry)."""
        if request_id in self._ids:
            return False
        self._order.append(request_id)
        self._ids.add(request_id)
        if len(self._order) > self.keep:
            self._ids.discard(self._order.popleft())
        return True

    def extend(self, request_ids: Iterable[str | int]) -> None:
        for request_id in request_ids:
            self.add(request_id)
