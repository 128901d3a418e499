"""Background work owned by one connection: kept referenced while it runs, cancelled when the connection ends."""

from __future__ import annotations

import asyncio
from typing import Coroutine


class ConnectionTasks:
    """The tasks a connection started (a detection worker, a face search, a close notice)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def start(self, work: Coroutine) -> None:
        """Run `work` in the background, owned by this connection."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        """The connection ended: stop what it left running."""
        for task in list(self._tasks):
            task.cancel()
