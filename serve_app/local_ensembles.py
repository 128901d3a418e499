"""Twin ensembles run inside the ingress replica (`twin_inference: ingress`).

On a small node every Ray hop costs more CPU than the model: a twin prediction through the predictor
pool pays a gRPC call, pickling both ways and a second process's scheduling. With this setting the
ingress loads the ensembles itself (ONNX Runtime, `intra_op_threads` per call, in worker threads) and
the coalesced rows of all its connections run here; the predictor pool still answers `describe` and admin
calls. Use the pool (the default) to scale predictions out across nodes or onto GPUs.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path

import numpy as np

from deployments.ensemble_predictor import RowBatch
from models.ensemble import Ensemble
from models.repository import ModelRepository


class LocalEnsembles:
    """`await predict(name, rows)` with the `capacity` most recently used ensembles kept loaded; concurrent
    calls run side by side in worker threads (ONNX Runtime releases the GIL)."""

    def __init__(self, repository: Path, intra_op_threads: int = 1, capacity: int = 8):
        self.intra_op_threads = intra_op_threads
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
                self._loaded[name] = await asyncio.to_thread(Ensemble, path, self.intra_op_threads, False)
                while len(self._loaded) > self.capacity:
                    self._loaded.popitem(last=False)
            return self._loaded[name]

    async def predict(self, name: str, rows: RowBatch) -> np.ndarray:
        ensemble = await self._ensemble(name)
        return await asyncio.to_thread(ensemble.predict, rows.boundary, rows.boost_mask)
