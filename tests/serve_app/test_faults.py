"""Fault injection while clients stream: kill the predictor, ingress and detector replicas and the twin
session shards; with the project's client (reconnect, resume, retry by request id) no request is lost."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest
import websockets

from deployments.shared.mongo import connect
from models.twin.plant import TARGET_SIGNALS, Fault, simulate
from serve_app.twin.client import TwinClient
from tests.support.kiosk import Kiosk
from tests.support.processes import DETECTOR, INGRESS, PREDICTOR, SHARDS, ray_process_pids
from tests.support.server import ADMIN_TOKEN, CLIENT_TOKEN
from tests.support.store_frames import product_frame
from tests.support.twin_stream import alert_changes, configured, send_measured
from tests.support.wire import as_signals, rows, run

REQUESTS, PIPELINE = 240, 8


def kill(server, prefix: str) -> list[int]:
    pids = ray_process_pids(server, prefix)
    assert pids, f"no process {prefix}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


async def persisted(server, session_id: str, timeout_s: float = 30.0, where: dict | None = None) -> None:
    """Wait until the session's shard has written it (matching `where`) to MongoDB (it does so about once a
    second)."""
    sessions = connect(server.mongo_uri)["streamforge"].twin_sessions
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await asyncio.to_thread(sessions.find_one, {"session_id": session_id, **(where or {})}) is None:
        assert asyncio.get_running_loop().time() < deadline, f"session {session_id} never persisted"
        await asyncio.sleep(0.2)


async def stream_through_a_fault(server, prefix: str, kill_after: int, once_persisted: bool = False,
                                 quiet_s: float = 0.0) -> tuple[TwinClient, np.ndarray, list[int]]:
    """Send REQUESTS predictions, PIPELINE at a time; kill `prefix` processes once `kill_after` are answered
    (and, with `once_persisted`, the session is in MongoDB; then `quiet_s` more seconds without traffic)."""
    x = rows(REQUESTS, seed=404)
    answers: list[np.ndarray | None] = [None] * REQUESTS
    killed: list[int] = []
    async with TwinClient(server.ws, token=CLIENT_TOKEN, max_retries=20, max_backoff_s=3.0) as twin:
        await twin.configure(server.demo.name)
        for start in range(0, REQUESTS, PIPELINE):
            if start >= kill_after and not killed:
                if once_persisted:
                    await persisted(server, twin.session_id)
                await asyncio.sleep(quiet_s)
                killed = kill(server, prefix)
            replies = await asyncio.gather(*(twin.predict(as_signals(x[i])) for i in range(start, start + PIPELINE)))
            for i, reply in zip(range(start, start + PIPELINE), replies):
                answers[i] = [reply["data"]["predictions"][t] for t in TARGET_SIGNALS]
    return twin, np.array(answers), killed


def check(server, twin: TwinClient, answers: np.ndarray, prefix: str, killed: list[int]) -> None:
    """Every prediction answered and right (lost = 0), and the killed processes were replaced."""
    np.testing.assert_allclose(answers, server.demo.predict(rows(REQUESTS, seed=404)), rtol=1e-5, atol=1e-5)
    assert twin.stats.sent == twin.stats.answered == REQUESTS + 1  # the predictions and the config
    assert killed and set(ray_process_pids(server, prefix)).isdisjoint(killed)




@pytest.mark.restarts_server
def test_predictor_replica_killed_mid_stream_loses_no_request(server):
    server.in_pool_mode()  # predictions through the predictor pool
    twin, answers, killed = run(stream_through_a_fault(server, PREDICTOR, 64))
    check(server, twin, answers, PREDICTOR, killed)


def test_ingress_replica_killed_mid_stream_client_reconnects_and_resumes(server):
    twin, answers, killed = run(stream_through_a_fault(server, INGRESS, 64))
    check(server, twin, answers, INGRESS, killed)
    assert twin.stats.reconnects >= 1 and twin.stats.resumed >= 1 and twin.stats.retried >= 1, twin.stats


def test_session_shards_killed_mid_stream_client_carries_on_and_the_session_resumes(server):
    twin, answers, killed = run(stream_through_a_fault(server, SHARDS, 160, once_persisted=True))
    check(server, twin, answers, SHARDS, killed)

    async def resume():  # the restarted shard finds the session in MongoDB
        async with TwinClient(server.ws, session_id=twin.session_id, token=CLIENT_TOKEN) as again:
            return await again.configure(server.demo.name)
    ack = run(resume())
    assert ack["resumed"] is True and ack["session_id"] == twin.session_id


def test_a_session_resumed_after_its_shards_restarted_continues_its_monitor(server):
    """The stuck alert opened before the shard restart stays open (not re-opened) and clears when the
    sensor moves again: the monitor's state came back from MongoDB with the session."""
    data = simulate(300, seed=61, faults=(Fault("stuck", 100, 200, "Temperature_target_1"),))

    async def scenario():
        peer, ack = await configured(server, mode="batch", batch_size=300)
        before = await send_measured(peer, data, slice(0, 150))
        await peer.ws.close()
        await persisted(server, ack["session_id"], where={"monitor_state.detectors.samples": 150})
        kill(server, SHARDS)
        again, _ = await configured(server, mode="batch", batch_size=300, session_id=ack["session_id"])
        after = await send_measured(again, data, slice(150, 300))
        await again.ws.close()
        return before, after

    before, after = run(scenario())
    assert alert_changes(before) == [("alert", "stuck", "Temperature_target_1")]
    assert alert_changes(after) == [("alert_cleared", "stuck", "Temperature_target_1")]


def test_history_survives_a_shard_killed_mid_stream(server):
    # quiet for longer than the shards' write interval (1 s) before the kill: nothing may be lost then
    twin, answers, killed = run(stream_through_a_fault(server, SHARDS, 120, once_persisted=True, quiet_s=1.5))
    check(server, twin, answers, SHARDS, killed)  # the client has closed: the session is finished
    history = server.api.get(f"/api/v1/inference/stream/history/{twin.session_id}?format=json")
    assert history.status_code == 200, history.text
    predicted = np.array([[s["predictions"][t] for t in TARGET_SIGNALS] for s in history.json()["samples"]])
    assert len(predicted) == REQUESTS  # every sample, none twice (pipelined replies may be recorded out of order)
    np.testing.assert_allclose(np.sort(predicted, axis=0), np.sort(answers, axis=0), rtol=1e-6)
    stats = server.api.get("/api/v1/inference/stream/stats").json()
    assert twin.session_id not in [c["session_id"] for c in stats["connections"]]  # not left "connected"
    saved = server.api.post("/api/v1/inference/stream/save", json={"session_id": twin.session_id, "format": "csv"})
    assert saved.status_code == 200 and saved.json()["samples_saved"] == REQUESTS




@pytest.mark.restarts_server
def test_detector_replica_killed_mid_stream_the_kiosk_carries_on(server):
    """Frames in flight may get DETECTION_ERROR; the kiosk keeps its connection and detections resume."""
    server.in_pool_mode()  # frames through the detector pool
    frame = product_frame([2], seed=31)

    async def scenario():
        async with websockets.connect(f"{server.ws}/ws/fault-kiosk", max_size=2**24,
                                      additional_headers=server.headers(ADMIN_TOKEN)) as ws:
            kiosk = Kiosk(ws)
            before = await kiosk.show(frame, binary=True)
            killed = kill(server, DETECTOR)
            deadline = asyncio.get_running_loop().time() + 120
            while True:  # keep streaming until the restarted replica answers again
                await ws.send(frame)
                message = await kiosk.recv_until_any({"detections", "error"}, timeout=60)
                if message["type"] == "detections" or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.5)
            return before, message, killed, kiosk
    before, after, killed, kiosk = run(scenario())
    assert [d["class_id"] for d in before["detections"]] == [2]
    assert after["type"] == "detections" and [d["class_id"] for d in after["detections"]] == [2]
    assert all(m["error_code"] == "DETECTION_ERROR" for m in kiosk.of("error"))
    assert set(ray_process_pids(server, DETECTOR)).isdisjoint(killed)
