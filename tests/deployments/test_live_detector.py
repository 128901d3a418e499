"""The live detector of a replica follows the version an admin makes live, between frames, and keeps
its model when the database is unreachable."""

from __future__ import annotations

import time

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deployments.detector_versions import CONFIGURED, DetectorVersions
from deployments.live_detector import LiveDetector
from serve_app.settings import AppSettings, project_path
from tests.serve_app.store_frames import product_frame

WEIGHTS = project_path(AppSettings().detector_weights)


def blind_model(path=WEIGHTS) -> bytes:
    """The detector at `path` with every class score multiplied by 0: a real ONNX model that finds nothing."""
    model = onnx.load(str(path))
    graph = model.graph
    output = graph.output[0]
    channels = output.type.tensor_type.shape.dim[1].dim_value  # 4 box values + one score per class
    scale = np.array([1, 1, 1, 1] + [0] * (channels - 4), np.float32).reshape(1, channels, 1)
    graph.initializer.append(numpy_helper.from_array(scale, "blind_scale"))
    for node in graph.node:
        node.output[:] = [f"{o}_seen" if o == output.name else o for o in node.output]
    graph.node.append(helper.make_node("Mul", [f"{output.name}_seen", "blind_scale"], [output.name]))
    return model.SerializeToString()


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
