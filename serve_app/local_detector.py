"""Store detection inside the ingress replica (`store_inference: ingress`).

On one small node the Ray hop to the YOLODetector pool costs more than it saves: measured with 4 kiosks at
10 fps on 2 cores, frame-to-event p50 22-24 ms through the pool and 16 ms here, and the pool's replica
spent ~0.6 cores where detection itself needs ~0.4 (README, "Measured numbers"). Frames run in worker
threads (OpenCV and ONNX Runtime release the GIL), at most `calls` at once per replica with one ONNX
Runtime thread each: on CPUs a batch of frames is no cheaper per frame than one frame, so frames of
different kiosks run side by side (across calls and ingress replicas) instead of waiting for each other's
batch. Use the pool (the default) for GPUs and scale-out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from models.detector import ProductDetector


class LocalDetector:
    """`await detect(jpeg_bytes)` -> detections as dicts, or {"error": ...}: the YOLODetector contract."""

    def __init__(self, weights: Path, conf: float, iou: float, calls: int = 1):
        self.detector = ProductDetector(weights, conf=conf, iou=iou, intra_op_threads=1)
        self._calls = asyncio.Semaphore(calls)

    async def detect(self, frame: bytes) -> list[dict] | dict:
        async with self._calls:
            return (await asyncio.to_thread(self.detector.detect_frames, [frame]))[0]
