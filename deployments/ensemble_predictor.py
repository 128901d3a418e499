"""EnsemblePredictor: a replica pool serving twin ensembles by name, batched across all callers.

Callers pick the ensemble with `handle.options(multiplexed_model_id=name)`; Serve routes them to a
replica that has it loaded, keeps an LRU of ensembles per replica, and `@serve.batch` merges rows from
many callers (for one ensemble at a time) into one ONNX Runtime call.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import numpy as np
from ray import serve
from ray.serve import metrics

from models.twin.ensemble import Ensemble, RowBatch
from models.twin.repository import EnsembleNotFound, ModelRepository


def total_rows(batches: list[RowBatch]) -> int:
    return sum(len(b) for b in batches)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class EnsemblePredictor:
    """Loads ensembles from a model repository; `predict` answers RowBatch -> predictions [n, n_target]."""

    def __init__(self, model_repository: str, runtime: str = "auto", intra_op_threads: int = 0):
        """`runtime`: where ensembles run, `cpu`, `cuda` or `auto` (models.twin.ensemble.Ensemble)."""
        self.repository = ModelRepository(Path(model_repository))
        self.runtime, self.intra_op_threads = runtime, intra_op_threads
        self.batch_rows = metrics.Histogram("streamforge_predictor_batch_rows", description="Rows per ensemble call.",
                                            boundaries=[1, 4, 16, 64, 256, 1024, 4096], tag_keys=("ensemble",))
        gc.freeze()  # on the reply path: keep long-lived objects out of full GC passes (see StreamIngress)

    def reconfigure(self, config: dict) -> None:
        """user_config: `max_batch_rows` and `batch_wait_timeout_s` of the predict batcher."""
        if "max_batch_rows" in config:
            self.predict.set_max_batch_size(int(config["max_batch_rows"]))
        if "batch_wait_timeout_s" in config:
            self.predict.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    @serve.multiplexed(max_num_models_per_replica=8)
    async def load_ensemble(self, name: str) -> Ensemble:
        return await asyncio.to_thread(Ensemble, self.repository.path(name), self.intra_op_threads, self.runtime)

    async def describe(self) -> dict | None:
        """Info of the ensemble named by the multiplexed model id, or None when it does not exist."""
        name = serve.get_multiplexed_model_id()
        try:
            self.repository.path(name)
        except EnsembleNotFound:
            return None
        return (await self.load_ensemble(name)).describe()

    def retire(self, name: str) -> bool:
        """Take an ensemble out of service (repository folder moved aside); False when there is none.
        Sessions that already use it keep it until they reconfigure."""
        try:
            self.repository.retire(name)
        except EnsembleNotFound:
            return False
        return True

    def list_ensembles(self) -> list[dict]:
        """Manifest summaries of every ensemble in the repository."""
        return [{**self.repository.manifest(name).summary(), "ensemble_name": name} for name in self.repository.names()]

    @serve.batch(max_batch_size=4096, batch_wait_timeout_s=0.0, max_concurrent_batches=2, batch_size_fn=total_rows)
    async def predict(self, batches: list[RowBatch]) -> list[np.ndarray]:
        ensemble = await self.load_ensemble(serve.get_multiplexed_model_id())
        boundary = np.concatenate([b.boundary for b in batches])
        self.batch_rows.observe(len(boundary), tags={"ensemble": ensemble.name})
        mask = np.concatenate([b.boost_mask for b in batches])
        out = await asyncio.to_thread(ensemble.predict, boundary, mask)
        return np.split(out, np.cumsum([len(b) for b in batches])[:-1])
