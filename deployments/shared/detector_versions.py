"""Store detector versions in MongoDB: every trained model with its metrics, and which one is live.

Version 0 is the detector configured in serve.yaml (`detector_weights`, a file); trained versions 1, 2, ...
keep their ONNX model and ultralytics weights in the database, so every replica on every node can load
them and a restarted replica comes back with the live one. Replicas read the live pointer every few
seconds (deployments.shared.live_detector); promoting or rolling back is one write.
"""

from __future__ import annotations

import hashlib
import time

from bson import Binary
from pymongo import ASCENDING, DESCENDING, ReturnDocument

from deployments.shared.mongo import PUBLIC, connect

CONFIGURED = 0  # the version number of the detector file named in the configuration
LIVE_POINTER = "detector"  # its document in the `versions` collection holds the live version
FILES = {"onnx": 0, "weights": 0, "hard_negatives": 0}  # the bulk of a version: only replicas and jobs read it


class DetectorVersions:
    """The `detector_versions` collection and the live pointer."""

    def __init__(self, uri: str, name: str = "streamforge"):
        db = connect(uri)[name]
        self.models, self.pointers = db.detector_versions, db.versions

    def ensure_schema(self) -> None:
        """Unique version number."""
        self.models.create_index([("version", ASCENDING)], unique=True)

    def add(self, onnx: bytes, weights: bytes, meta: dict, status: str, source: str,
            hard_negatives: list[dict] | None = None) -> int:
        """Store a trained model (status `passed` or `refused`) with the crops it was taught are no product
        (models.store.train.mine_hard_negatives); its new version number."""
        counter = self.pointers.find_one_and_update({"name": "detector_version_counter"}, {"$inc": {"value": 1}},
                                                    upsert=True, return_document=ReturnDocument.AFTER)
        version = int(counter["value"])
        self.models.insert_one({"version": version, "status": status, "source": source, "meta": meta,
                                "digest": hashlib.sha256(onnx).hexdigest(),
                                "created_at": time.time(), "onnx": Binary(onnx), "weights": Binary(weights),
                                "hard_negatives": hard_negatives or []})
        return version

    def catalog(self) -> list[dict]:
        """Every stored version, newest first, without its files."""
        return list(self.models.find({}, {**PUBLIC, **FILES}).sort("version", DESCENDING))

    def get(self, version: int, files: bool = False) -> dict | None:
        """One stored version (with `onnx` and `weights` bytes and the hard negatives it was taught when
        `files`), or None."""
        return self.models.find_one({"version": version}, PUBLIC if files else {**PUBLIC, **FILES})

    def live(self) -> int:
        """The live version (CONFIGURED until a trained version is promoted)."""
        doc = self.pointers.find_one({"name": LIVE_POINTER}, PUBLIC)
        return int(doc["version"]) if doc else CONFIGURED

    def set_live(self, version: int, previous: int | None = None) -> bool:
        """Make `version` live (CONFIGURED or a stored `passed` one); with `previous`, only if that is still
        live (so two promotions cannot interleave). False when refused."""
        if version != CONFIGURED and self.models.count_documents({"version": version, "status": "passed"}) == 0:
            return False
        if previous is not None and self.live() != previous:
            return False
        self.pointers.update_one({"name": LIVE_POINTER}, {"$set": {"version": version, "since": time.time()}},
                                 upsert=True)
        return True
