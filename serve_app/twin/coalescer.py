"""Coalescing predictions in the ingress: one predictor call carries rows from many connections.

Every Ray hop costs milliseconds here, so the ingress does not call the predictor once per message:
predictions that arrive while the event loop is busy are gathered, and each gathered group becomes one
call per ensemble (at most `max_calls` calls in flight, whatever their ensembles; more rows wait) - to
the predictor pool, or with `twin_inference: ingress` to the ensembles loaded in the ingress itself
(serve_app/twin/ensembles.py).

A call carries at most `max_rows` rows. A larger message is split: its first rows go now, the rest waits
behind the messages that arrived meanwhile, so a 1,000-row batch does not hold up every single-sample
message of the other connections until it is done (round-robin, in pieces of `max_rows`). And while a
bulk call (more than EXPRESS_ROWS rows) runs in every call slot, small messages do not wait for it: they
go in one extra express call of at most EXPRESS_ROWS rows, so a client sending large batches adds
about one small call's time to the others' latency, not one bulk call's.

This is a plain asyncio queue rather than `@serve.batch`: serve.batch's per-call bookkeeping (argument
signature recovery, per-request futures and queue tasks) costs the ingress event loop far more
(docs/benchmarks.md); the predictor itself keeps `@serve.batch` (deployments/ensemble_predictor).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

from models.twin.ensemble import RowBatch
from serve_app.web.bulk import BULK_ROWS


@dataclass(eq=False)  # one caller is one caller: compared by identity
class _Pending:
    """One caller's rows: taken in pieces, answered once every piece is predicted."""

    ensemble: str
    rows: RowBatch
    result: asyncio.Future
    taken: int = 0  # rows [0, taken) are in calls
    done: dict[int, np.ndarray] = field(default_factory=dict)  # first row of a piece -> its predictions

    def take(self, count: int) -> tuple["_Pending", int, int]:
        start = self.taken
        self.taken = min(len(self.rows), start + count)
        return self, start, self.taken

    def answer(self, start: int, predictions: np.ndarray) -> None:
        self.done[start] = predictions
        if sum(len(p) for p in self.done.values()) == len(self.rows) and not self.result.done():
            self.result.set_result(np.concatenate([self.done[s] for s in sorted(self.done)]))


Piece = tuple[_Pending, int, int]  # (caller, first row, end row)
EXPRESS_ROWS = BULK_ROWS  # messages this small may pass the bulk calls in the express call


class PredictionCoalescer:
    """`await predict(ensemble, rows)` -> predictions; concurrent calls share predictor round trips."""

    def __init__(self, call: Callable[[str, RowBatch], Awaitable[np.ndarray]], max_rows: int, wait_s: float,
                 max_calls: int = 4):
        """`call(ensemble, rows)` predicts one merged group: the predictor pool, or ensembles in this process."""
        self._call_backend = call
        self._max_rows = max_rows
        self._wait_s = wait_s
        self._calls = asyncio.Semaphore(max_calls)
        self._pending: deque[_Pending] = deque()
        self._in_flight: set[asyncio.Future] = set()  # calls running now (kept referenced until done)
        self._bulk: set[asyncio.Future] = set()  # those of more than EXPRESS_ROWS rows
        self._express: asyncio.Future | None = None  # the express call running now
        self._wakeup = asyncio.Event()  # a call finished or a message arrived
        self._draining = False

    async def predict(self, ensemble: str, rows: RowBatch) -> np.ndarray:
        """Predictions [n, n_target] for `rows` with `ensemble`."""
        result = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(ensemble, rows, result))
        self._wakeup.set()
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await result

    async def _drain(self) -> None:
        """Send what is pending in groups of up to `max_rows`, one call per ensemble, while calls are free."""
        try:
            while self._pending:
                if self._calls.locked():  # every slot busy: small messages may pass bulk calls, then wait
                    self._send_express()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await self._calls.acquire()
                if self._wait_s:
                    await asyncio.sleep(self._wait_s)
                else:
                    await asyncio.sleep(0)  # let the messages already read on other connections join
                by_ensemble: dict[str, list[Piece]] = {}
                for piece in self._take():
                    by_ensemble.setdefault(piece[0].ensemble, []).append(piece)
                if not by_ensemble:
                    self._calls.release()
                for i, (ensemble, pieces) in enumerate(by_ensemble.items()):
                    if i:  # the first call has the slot taken above; each further one takes its own
                        await self._calls.acquire()
                    call = asyncio.ensure_future(self._call(ensemble, pieces))
                    self._in_flight.add(call)
                    if sum(b - a for _, a, b in pieces) > EXPRESS_ROWS:
                        self._bulk.add(call)
                    call.add_done_callback(self._finished)
        finally:
            self._draining = False

    def _finished(self, call: asyncio.Future) -> None:
        self._in_flight.discard(call)
        self._bulk.discard(call)
        self._calls.release()
        self._wakeup.set()

    def _send_express(self) -> None:
        """While only bulk calls run and no express call does: one call with the waiting messages of at most
        EXPRESS_ROWS rows (of the first such message's ensemble, up to EXPRESS_ROWS rows in all)."""
        if self._express is not None or not self._bulk or len(self._bulk) < len(self._in_flight):
            return
        pieces, room = [], EXPRESS_ROWS
        for pending in list(self._pending):
            left = len(pending.rows) - pending.taken
            if pending.result.done() or left > room or (pieces and pending.ensemble != pieces[0][0].ensemble):
                continue
            pieces.append(pending.take(left))
            room -= left
            self._pending.remove(pending)
        if pieces:
            self._express = asyncio.ensure_future(self._call(pieces[0][0].ensemble, pieces))
            self._express.add_done_callback(self._express_finished)

    def _express_finished(self, _: asyncio.Future) -> None:
        self._express = None
        self._wakeup.set()

    def _take(self) -> list[Piece]:
        """Up to `max_rows` rows, oldest callers first; a caller with rows left goes to the back."""
        pieces, room, unfinished = [], self._max_rows, []
        while self._pending and room > 0:
            pending = self._pending.popleft()
            if pending.result.done():  # the caller went away
                continue
            pieces.append(pending.take(room))
            room -= pieces[-1][2] - pieces[-1][1]
            if pending.taken < len(pending.rows):
                unfinished.append(pending)
        self._pending.extend(unfinished)
        return pieces

    async def _call(self, ensemble: str, pieces: list[Piece]) -> None:
        merged = RowBatch(np.concatenate([p.rows.boundary[a:b] for p, a, b in pieces]),
                          np.concatenate([p.rows.boost_mask[a:b] for p, a, b in pieces]))
        try:
            out = await self._call_backend(ensemble, merged)
        except Exception as exc:  # handed to each caller of this group
            for p, _, _ in pieces:
                if not p.result.done():
                    p.result.set_exception(exc)
            return
        for (p, a, b), part in zip(pieces, np.split(out, np.cumsum([b - a for _, a, b in pieces])[:-1])):
            p.answer(a, part)
