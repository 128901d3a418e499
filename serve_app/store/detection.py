"""Where kiosk frames are detected: the YOLODetector pool, or a detector inside the ingress replica.

`store_inference: pool` sends each frame to the YOLODetector pool (GPUs, scale-out). `store_inference:
ingress` (configs/serve.yaml) detects in the ingress: on one small node the Ray hop to the pool costs more
than it saves (docs/benchmarks.md). Frames run in worker threads (OpenCV and ONNX Runtime release the GIL),
at most `calls` at once per replica with one ONNX Runtime thread each: on CPUs a batch of frames is no
cheaper per frame than one frame, so frames of different kiosks run side by side instead of waiting for
each other's batch. Both follow the live detector version (deployments.shared.live_detector).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from deployments.shared.detector_versions import DetectorVersions
from deployments.shared.live_detector import LiveDetector


class DetectorPool:
    """The YOLODetector deployment."""

    def __init__(self, handle):
        self.handle = handle

    async def detect(self, frame: bytes) -> list[dict] | dict:
        """Detections as dicts, or {"error": ...} for bytes that do not decode as an image."""
        return await self.handle.detect.remote(frame)


class LocalDetector:
    """`await detect(jpeg_bytes)` -> detections as dicts, or {"error": ...}: the YOLODetector contract."""

    def __init__(
        self, weights: Path, conf: float, iou: float, calls: int = 1, versions: DetectorVersions | None = None
    ):
        self.detector = LiveDetector(weights, conf, iou, 1, versions)
        self._calls = asyncio.Semaphore(calls)

    async def detect(self, frame: bytes) -> list[dict] | dict:
        """Detections as dicts, or {"error": ...} for bytes that do not decode as an image."""
        async with self._calls:
            return (await asyncio.to_thread(self.detector.detect_frames, [frame]))[0]
