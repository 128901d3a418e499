"""YOLODetector: product detection for every kiosk, frames batched across kiosks with @serve.batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ray import serve

from models.detector import ProductDetector, decode_image


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64)
class YOLODetector:
    """`detect(jpeg_bytes)` -> list of {class_id, score, box} or {"error": ...} for undecodable bytes."""

    def __init__(self, weights: str, conf: float = 0.4, iou: float = 0.5, intra_op_threads: int = 0):
        self.detector = ProductDetector(Path(weights), conf=conf, iou=iou, intra_op_threads=intra_op_threads)

    def reconfigure(self, config: dict) -> None:
        """user_config: `max_batch_size`, `batch_wait_timeout_s`, `conf`, `iou`."""
        if "max_batch_size" in config:
            self.detect.set_max_batch_size(int(config["max_batch_size"]))
        if "batch_wait_timeout_s" in config:
            self.detect.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
        self.detector.conf = float(config.get("conf", self.detector.conf))
        self.detector.iou = float(config.get("iou", self.detector.iou))

    def _detect_all(self, frames: list[bytes]) -> list[list[dict] | dict]:
        images = [decode_image(f) for f in frames]
        valid = [img for img in images if img is not None]
        found = iter(self.detector.detect(valid))
        return [[d.to_dict() for d in next(found)] if img is not None else {"error": "undecodable image"}
                for img in images]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def detect(self, frames: list[bytes]) -> list[list[dict] | dict]:
        return await asyncio.to_thread(self._detect_all, frames)
