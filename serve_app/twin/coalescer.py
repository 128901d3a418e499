"""Coalescing predictions in the ingress: one predictor call carries rows from many connections.

Every Ray hop costs milliseconds here, so the ingress does not call the predictor once per message:
predictions that arrive while the event loop is busy are gathered, and each gathered group becomes one
call per ensemble (at most `max_calls` calls in flight, whatever their ensembles; more rows wait) - to the predictor
pool, or with `twin_inference: ingress` to the ensembles loaded in the ingress itself
(serve_app/twin/ensembles.py).

This is a plain asyncio queue rather than `@serve.batch`: serve.batch's per-call bookkeeping (argument
signature recovery, per-request futures and queue tasks) costs the ingress event loop far more
(docs/benchmarks.md); the predictor itself keeps `@serve.batch` (deployments/ensemble_predictor).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from models.ensemble import RowBatch


@dataclass
class _Pending:
    ensemble: str
    rows: RowBatch
    result: asyncio.Future


class PredictionCoalescer:
    """`await predict(ensemble, rows)` -> predictions; concurrent calls share predictor round trips."""

    def __init__(self, call: Callable[[str, RowBatch], Awaitable[np.ndarray]], max_rows: int, wait_s: float,
                 max_calls: int = 4):
        """`call(ensemble, rows)` predicts one merged group: the predictor pool, or ensembles in this process."""
        self._call_backend = call
        self._max_rows = max_rows
        self._wait_s = wait_s
        self._calls = asyncio.Semaphore(max_calls)
        self._pending: list[_Pending] = []
        self._in_flight: set[asyncio.Future] = set()  # calls running now (kept referenced until done)
        self._draining = False

    async def predict(self, ensemble: str, rows: RowBatch) -> np.ndarray:
        result = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(ensemble, rows, result))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await result

    async def _drain(self) -> None:
        """Send what is pending in groups of up to `max_rows`, one call per ensemble, while calls are free."""
        try:
            while self._pending:
                await self._calls.acquire()
                if self._wait_s:
                    await asyncio.sleep(self._wait_s)
                else:
                    await asyncio.sleep(0)  # let the messages already read on other connections join
                by_ensemble: dict[str, list[_Pending]] = {}
                for p in self._take():
                    by_ensemble.setdefault(p.ensemble, []).append(p)
                for i, (ensemble, group) in enumerate(by_ensemble.items()):
                    if i:  # the first call has the slot taken above; each further one takes its own
                        await self._calls.acquire()
                    call = asyncio.ensure_future(self._call(ensemble, group))
                    self._in_flight.add(call)
                    call.add_done_callback(self._finished)
        finally:
            self._draining = False

    def _finished(self, call: asyncio.Future) -> None:
        self._in_flight.discard(call)
        self._calls.release()

    def _take(self) -> list[_Pending]:
        taken, rows = 0, 0
        for p in self._pending:
            if taken and rows + len(p.rows) > self._max_rows:
                break
            taken, rows = taken + 1, rows + len(p.rows)
        group, self._pending = self._pending[:taken], self._pending[taken:]
        return group

    async def _call(self, ensemble: str, group: list[_Pending]) -> None:
        merged = RowBatch(np.concatenate([p.rows.boundary for p in group]),
                          np.concatenate([p.rows.boost_mask for p in group]))
        try:
            out = await self._call_backend(ensemble, merged)
        except Exception as exc:  # handed to each caller of this group
            for p in group:
                if not p.result.done():
                    p.result.set_exception(exc)
            return
        for p, part in zip(group, np.split(out, np.cumsum([len(p.rows) for p in group])[:-1])):
            if not p.result.done():  # a caller that went away cancelled its future
                p.result.set_result(part)
