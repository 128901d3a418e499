"""Coalescing predictions in the ingress: one predictor call carries rows from many connections.

Every Ray hop costs milliseconds here, so the ingress does not call the predictor once per message:
`@serve.batch` gathers the predictions that arrive while a call is in flight, and each gathered batch
becomes one handle call per ensemble.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from ray import serve

from deployments.ensemble_predictor import RowBatch


@dataclass
class _Pending:
    ensemble: str
    rows: RowBatch


def _rows(pending: list[_Pending]) -> int:
    return sum(len(p.rows) for p in pending)


class PredictionCoalescer:
    """`await predict(ensemble, rows)` -> predictions; concurrent calls share predictor round trips."""

    def __init__(self, predictor, max_rows: int, wait_s: float):
        self._predictor = predictor
        self._batched.set_max_batch_size(max_rows)
        self._batched.set_batch_wait_timeout_s(wait_s)

    async def predict(self, ensemble: str, rows: RowBatch) -> np.ndarray:
        result = await self._batched(_Pending(ensemble, rows))
        if isinstance(result, Exception):
            raise result
        return result

    async def _call(self, ensemble: str, group: list[_Pending]) -> list[np.ndarray] | Exception:
        merged = RowBatch(np.concatenate([p.rows.boundary for p in group]),
                          np.concatenate([p.rows.boost_mask for p in group]))
        try:
            out = await self._predictor.options(multiplexed_model_id=ensemble).predict.remote(merged)
        except Exception as exc:  # handed to each caller of this group
            return exc
        return np.split(out, np.cumsum([len(p.rows) for p in group])[:-1])

    @serve.batch(max_batch_size=2048, batch_wait_timeout_s=0.0, max_concurrent_batches=4, batch_size_fn=_rows)
    async def _batched(self, pending: list[_Pending]) -> list[np.ndarray | Exception]:
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(pending):
            groups.setdefault(p.ensemble, []).append(i)
        results: list[np.ndarray | Exception] = [None] * len(pending)  # type: ignore[list-item]
        outcomes = await asyncio.gather(*(self._call(e, [pending[i] for i in idx]) for e, idx in groups.items()))
        for idx, outcome in zip(groups.values(), outcomes):
            for j, i in enumerate(idx):
                results[i] = outcome if isinstance(outcome, Exception) else outcome[j]
        return results
