"""serve.yaml's one-node default: twin predictions and kiosk frames inside the ingress replicas
(`twin_inference: ingress`, `store_inference: ingress`). LocalDetector answers each frame as the detector
would alone, at most `calls` at a time; the whole server in that mode, with serve.yaml's ingress replicas
and its idle detector pool scaled to zero, serves both streams."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import yaml

from models.store.detector import ProductDetector
from serve_app.settings import PROJECT_ROOT, AppSettings, project_path
from serve_app.store.detection import LocalDetector
from tests.support.kiosk import Kiosk, kiosk
from tests.support.processes import DETECTOR, ray_process_pids
from tests.support.store_frames import empty_frame, product_frame
from tests.support.twin_stream import configured, expected, values
from tests.support.wire import as_signals, rows, run

WEIGHTS = project_path(AppSettings().store.detector_weights)


def test_local_detector_answers_each_frame_as_the_detector_alone_at_most_calls_at_once():
    frames = [product_frame([i % 4], seed=40 + i) for i in range(6)] + [empty_frame(7), b"\xff\xd8\xff truncated"]
    reference = ProductDetector(WEIGHTS, conf=0.4, iou=0.5).detect_frames(frames)
    local = LocalDetector(WEIGHTS, conf=0.4, iou=0.5, calls=2)
    running, most = 0, 0
    lock = threading.Lock()
    detect_frames = local.detector.detect_frames

    def counted(batch):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return detect_frames(batch)
        finally:
            with lock:
                running -= 1

    local.detector.detect_frames = counted

    async def detect_all():
        return await asyncio.gather(*(local.detect(f) for f in frames))

    answers = asyncio.run(detect_all())
    assert most == 2  # frames ran side by side, never more than `calls`
    assert [[d["class_id"] for d in a] for a in answers[:6]] == [[i % 4] for i in range(6)]
    assert answers[6] == [] and answers[7] == {"error": "undecodable image"}
    for got, want in zip(answers[:6], reference[:6]):
        assert [d["class_id"] for d in got] == [d["class_id"] for d in want]
        np.testing.assert_allclose([d["box"] for d in got], [d["box"] for d in want], atol=0.11)


@pytest.mark.restarts_server
def test_a_server_with_inference_in_the_ingress_serves_kiosks_and_twins(server):
    shipped = yaml.safe_load((PROJECT_ROOT / "configs" / "serve.yaml").read_text())["applications"][0]
    deployments = {d["name"]: d for d in shipped["deployments"]}
    twin, store = shipped["args"]["twin"], shipped["args"]["store"]
    inference = {"twin": {k: twin[k] for k in ("inference", "ingress_calls", "coalesce_max_rows")},
                 "store": {k: store[k] for k in ("inference", "ingress_calls")}}
    assert twin["inference"] == store["inference"] == "ingress"  # the mode this test is about
    server.restart({"StreamIngress": deployments["StreamIngress"]["num_replicas"],
                    "YOLODetector": deployments["YOLODetector"]["autoscaling_config"]}, **inference)
    x = rows(8, seed=77)

    async def store():
        async with kiosk(server, "ingress-mode") as ws:
            k = Kiosk(ws)
            for seed in range(5):
                await k.show(product_frame([2], seed=500 + seed), binary=seed % 2 == 0)
            await ws.send(product_frame([2], seed=9)[:300])  # passes the magic check, does not decode
            undecodable = await k.recv_until("error")
            return k, undecodable

    async def twin():
        peer, _ = await configured(server, True, mode="batch", batch_size=8)
        single = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[0])}}, True)
        batch = await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x]}}, True)
        await peer.ws.close()
        return single, batch

    k, undecodable = run(store())
    assert [d["product"]["yolo_class_id"] for d in k.of("product_detected")] == [2]
    assert all(d["class_id"] == 2 for m in k.of("detections") for d in m["detections"])
    assert undecodable["error_code"] == "INVALID_IMAGE"
    assert ray_process_pids(server, DETECTOR) == []  # the idle detector pool holds no replica
    single, batch = run(twin())
    np.testing.assert_allclose(
        values(single["data"]["predictions"]), expected(server.demo, x[0])[0], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose([values(p) for p in batch["data"]["predictions"]], expected(server.demo, x),
                               rtol=1e-5, atol=1e-5)

    # read-your-writes across serve.yaml's ingress replicas: whichever replica answers /stats, a client
    # sees every reply it was sent (sessions are spread over both replicas)
    async def session_counts(sent: int):
        peers = [(await configured(server))[0] for _ in range(8)]
        sessions = []
        for peer in peers:
            for r in rows(sent, seed=78):
                await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(r)}})
        async with server.async_api() as api:
            for peer in peers:  # each right after its own last reply
                sessions.append((await api.get("/api/v1/inference/stream/stats")).json())
        for peer in peers:
            await peer.ws.close()
        return sessions

    for sent in (5, 12):
        views = run(session_counts(sent))
        counts = [{c["session_id"]: c["predictions_count"] for c in v["connections"]} for v in views]
        assert all(sorted(c.values()).count(sent) >= 8 for c in counts), counts
