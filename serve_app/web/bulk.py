"""CPU-heavy work that must not slow the replies to other clients: worker threads at a lower OS priority.

On a node with few cores a 1,000-row batch (its ONNX calls) or a 10,000-sample export keeps a core busy
for a while; the event loop that answers every other connection of the replica, and the small calls of
other clients, then wait for the CPU behind it. Work handed to `run_bulk` runs in threads BULK_NICENESS
steps nicer than the process (Linux: the nice value is per thread; Ray starts its workers at nice 15,
so there it is 19, the lowest priority), so the scheduler runs the interactive work first and the bulk
work in the time left; with nothing else to do it runs at full speed.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

BULK_ROWS = 16  # predictor calls of more rows than this are bulk work
BULK_NICENESS = 4
BULK_THREADS = 4
T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None


async def run_bulk(work: Callable[..., T], *args) -> T:
    """`work(*args)` in a low-priority worker thread of this process."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(BULK_THREADS, "bulk", initializer=os.nice, initargs=(BULK_NICENESS,))
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(work, *args))
