"""Where twin predictions run: the EnsemblePredictor pool, or ensembles loaded in the ingress replica.

`twin_inference: pool` sends each coalesced call to the predictor pool (scale-out across nodes, GPUs).
`twin_inference: ingress` (configs/serve.yaml) loads the ensembles in the ingress itself (ONNX Runtime,
`intra_op_threads` per call, in worker threads): on a small node every Ray hop costs more CPU than the
model (a gRPC call, pickling both ways, a second process's scheduling). Either way the predictor pool
answers `describe`, listing and retiring.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path

import numpy as np

from models.twin.ensemble import Ensemble, RowBatch
from models.twin.repository import ModelRepository
from serve_app.web.bulk import BULK_ROWS, run_bulk
from serve_app.web.metrics import StreamMetrics


class PredictorPool:
    """The EnsemblePredictor deployment, by ensemble name (a multiplexed model id)."""

    def __init__(self, handle):
        self.handle = handle

    async def predict(self, name: str, rows: RowBatch) -> np.ndarray:
        """Predictions [n, n_target] for `rows`."""
        return await self.handle.options(multiplexed_model_id=name).predict.remote(rows)

    async def describe(self, name: str) -> dict | None:
        """Signals, boost choice and monitor calibration of an ensemble; None when there is none."""
        return await self.handle.options(multiplexed_model_id=name).describe.remote()

    async def names(self) -> list[dict]:
        """Manifest summaries of every ensemble a client can name."""
        return await self.handle.list_ensembles.remote()

    async def retire(self, name: str) -> bool:
        """Take an ensemble out of service; False when there is none."""
        return await self.handle.retire.remote(name)


class LocalEnsembles:
    """`await predict(name, rows)` with the `capacity` most recently used ensembles kept loaded; concurrent
    calls run side by side in worker threads (ONNX Runtime releases the GIL)."""

    def __init__(self, repository: Path, intra_op_threads: int = 1, capacity: int = 8,
                 metrics: StreamMetrics | None = None):
        self.intra_op_threads = intra_op_threads
        self.metrics = metrics
        self.repository = ModelRepository(Path(repository))
        self.capacity = capacity
        self._loaded: OrderedDict[str, Ensemble] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> list[str]:
        """Names of the ensembles held now, least recently used first."""
        return list(self._loaded)

    async def _ensemble(self, name: str) -> Ensemble:
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        async with self._lock:
            if name not in self._loaded:
                path = self.repository.path(name)  # EnsembleNotFound for an unknown or retired name
                self._loaded[name] = await asyncio.to_thread(Ensemble, path, self.intra_op_threads, "cpu")
                while len(self._loaded) > self.capacity:
                    self._loaded.popitem(last=False)
            return self._loaded[name]

    async def predict(self, name: str, rows: RowBatch) -> np.ndarray:
        """Predictions [n, n_target] for `rows`, computed in a worker thread of this process (a low-priority
        one for more than BULK_ROWS rows: serve_app.web.bulk)."""
        ensemble = await self._ensemble(name)
        if self.metrics is not None:
            self.metrics.call_rows.observe(len(rows), tags={"ensemble": name})
        run = run_bulk if len(rows) > BULK_ROWS else asyncio.to_thread
        return await run(ensemble.predict, rows.boundary, rows.boost_mask)
