"""The live detector of a replica follows the version an admin makes live, between frames, and keeps
its model when the database is unreachable."""

from __future__ import annotations

import time

from deployments.shared.detector_versions import CONFIGURED, DetectorVersions
from deployments.shared.live_detector import LiveDetector
from tests.support.detector import WEIGHTS, blind_model
from tests.support.store_frames import product_frame


def _add(versions: DetectorVersions, onnx_bytes: bytes, status: str = "passed") -> int:
    meta = {"classes": {"0": "tea-yuancui", "1": "tea-fenjie", "2": "tea-oolong", "3": "coffee-black"}, "imgsz": 320}
    return versions.add(onnx_bytes, b"weights", meta, status, "test")


def _answers_after_the_swap(live: LiveDetector, frame: bytes, version: int, timeout_s: float = 20.0) -> list:
    deadline = time.monotonic() + timeout_s
    while live.version != version and time.monotonic() < deadline:
        time.sleep(0.05)  # the replica's background check swaps the model, frames or not
    assert live.version == version
    return live.detect_frames([frame])[0]


def test_a_replica_swaps_to_the_live_version_and_back_between_frames(server):
    versions = DetectorVersions(server.mongo_uri, name="live-detector-test")
    versions.ensure_schema()
    live = LiveDetector(WEIGHTS, 0.4, 0.5, versions=versions, check_s=0.0)
    frame = product_frame([0, 3], seed=5)
    seen = live.detect_frames([frame])[0]
    assert {d["class_id"] for d in seen} == {0, 3}
    blind = _add(versions, blind_model())
    refused = _add(versions, WEIGHTS.read_bytes(), status="refused")
    assert not versions.set_live(refused)  # the gate refused it: it can never go live
    assert versions.set_live(blind)
    assert _answers_after_the_swap(live, frame, blind) == []
    assert not versions.set_live(CONFIGURED, previous=CONFIGURED)  # someone else changed it meanwhile
    assert versions.set_live(CONFIGURED, previous=blind)
    assert _answers_after_the_swap(live, frame, CONFIGURED) == seen
    live.close()


def test_an_idle_replica_answers_its_next_frame_with_the_version_made_live_meanwhile(server):
    versions = DetectorVersions(server.mongo_uri, name="live-detector-idle-test")
    versions.ensure_schema()
    live = LiveDetector(WEIGHTS, 0.4, 0.5, versions=versions, check_s=0.1)
    frame = product_frame([2], seed=7)
    assert live.detect_frames([frame])[0] != []
    assert versions.set_live(_add(versions, blind_model()))
    time.sleep(3.0)  # no frame comes while the admin promotes a version (here one that finds nothing)
    assert live.detect_frames([frame])[0] == []  # the very next frame
    live.close()


def test_a_replica_checks_every_check_s_and_an_unreachable_database_never_holds_up_a_frame(server):
    versions = DetectorVersions(server.mongo_uri, name="live-detector-outage-test")
    live = LiveDetector(WEIGHTS, 0.4, 0.5, versions=versions, check_s=3600.0)
    time.sleep(0.5)  # its first check, made when it starts
    assert versions.set_live(_add(versions, blind_model()))
    frame = product_frame([1], seed=6)
    time.sleep(0.5)
    assert live.detect_frames([frame])[0] != [] and live.version == CONFIGURED  # not due: no check was made
    assert live.refresh() != CONFIGURED and live.detect_frames([frame])[0] == []
    unreachable = LiveDetector(WEIGHTS, 0.4, 0.5, versions=DetectorVersions("mongodb://127.0.0.1:9"), check_s=0.0)
    for _ in range(5):
        assert unreachable.detect_frames([frame])[0] != []
    assert unreachable._lock.locked()  # the check still waits for the database (5 s); the frames did not
    assert unreachable.refresh() == CONFIGURED  # the failed check keeps the model
    live.close()
    unreachable.close()
