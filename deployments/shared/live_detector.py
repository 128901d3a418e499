"""The live store detector of one replica, swapped for a newly promoted version without stopping.

Every `check_s` seconds a background thread of the replica reads the live version number from MongoDB
(deployments.shared.detector_versions), whether frames come or not, so a replica that sat idle through a
promotion or a rollback answers its next frame with the live version. When it changed, the new model is
written to a local cache folder, loaded beside the old one, and replaces it between two frames: frames in
flight finish on the old model, kiosk connections never notice. If the database cannot be read the
replica keeps its model and tries again later; frames never wait for the database.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path

from deployments.shared.detector_versions import CONFIGURED, DetectorVersions
from models.store.detector import ProductDetector

logger = logging.getLogger("streamforge.detector")
CACHE = Path(tempfile.gettempdir()) / "streamforge-detectors"
MIN_CHECK_S = 0.05  # the background check never polls the database faster than this


class LiveDetector:
    """`detect_frames(frames)` with whichever detector version is live (ProductDetector's contract)."""

    def __init__(self, weights: Path, conf: float, iou: float, intra_op_threads: int = 1,
                 versions: DetectorVersions | None = None, check_s: float = 2.0):
        self.configured = Path(weights)
        self.conf, self.iou, self.threads, self.check_s = conf, iou, intra_op_threads, check_s
        self.versions = versions  # None: the configured file only
        self.version, self.detector = CONFIGURED, self._load(CONFIGURED)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if versions is not None:
            threading.Thread(target=self._follow, name="detector-version-check", daemon=True).start()

    def _load(self, version: int) -> ProductDetector:
        if version == CONFIGURED:
            path = self.configured
        else:
            digest = self.versions.get(version)["digest"]
            path = CACHE / digest / "store_detector.onnx"  # by content: databases may reuse version numbers
            if not path.exists():
                stored = self.versions.get(version, files=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_bytes(stored["onnx"])
                path.with_suffix(".json").write_text(json.dumps(stored["meta"]))
                partial.replace(path)
        return ProductDetector(path, conf=self.conf, iou=self.iou, intra_op_threads=self.threads)

    def _follow(self) -> None:
        """The background check: refresh, then wait `check_s` (at least MIN_CHECK_S), until closed."""
        while not self._closed.is_set():
            self.refresh()
            self._closed.wait(max(self.check_s, MIN_CHECK_S))

    def close(self) -> None:
        """Stop following the live version (the model in use stays)."""
        self._closed.set()

    def refresh(self) -> int:
        """Read the live version now and swap it in if it changed; the version in use afterwards."""
        with self._lock:
            try:
                live = self.versions.live()
                if live != self.version:
                    self.detector, self.version = self._load(live), live
                    logger.info("store detector version %d is live in this replica", live)
            except Exception as exc:  # noqa: BLE001 - a database or file problem must not stop detection
                logger.warning("store detector: keeping version %d (%s)", self.version, exc)
            return self.version

    def detect_frames(self, frames: list[bytes]) -> list[list[dict] | dict]:
        """Encoded frames -> per frame its detections as dicts, or {"error": ...}, with the model in use."""
        return self.detector.detect_frames(frames)
