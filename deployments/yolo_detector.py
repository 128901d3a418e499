"""YOLODetector: product detection for every kiosk, frames batched across kiosks with @serve.batch."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from ray import serve

from deployments.shared.detector_versions import DetectorVersions
from deployments.shared.live_detector import LiveDetector


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64)
class YOLODetector:
    """`detect(jpeg_bytes)` -> list of {class_id, score, box} or {"error": ...} for undecodable bytes.

    Two batches run at once (one decoding and preparing while the other infers; on a CPU node each on its
    own ONNX Runtime thread): on CPUs latency comes from running frames side by side, not from bigger
    batches (docs/benchmarks.md). With `mongo_uri` the replica follows the live detector version
    (deployments.shared.live_detector).
    """

    def __init__(self, weights: str, conf: float, iou: float, mongo_uri: str | None = None, intra_op_threads: int = 1):
        versions = DetectorVersions(mongo_uri) if mongo_uri else None
        self.detector = LiveDetector(Path(weights), conf, iou, intra_op_threads, versions)
        gc.freeze()  # on the reply path: keep long-lived objects out of full GC passes (see StreamIngress)

    def reconfigure(self, config: dict) -> None:
        """user_config: `max_batch_size`, `batch_wait_timeout_s`."""
        if "max_batch_size" in config:
            self.detect.set_max_batch_size(int(config["max_batch_size"]))
        if "batch_wait_timeout_s" in config:
            self.detect.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, max_concurrent_batches=2)
    async def detect(self, frames: list[bytes]) -> list[list[dict] | dict]:
        return await asyncio.to_thread(self.detector.detect_frames, frames)
