"""Twin sessions over the real server: resume after reconnect, expiry, stats, save and history export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time

import numpy as np

from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from tests.support.paths import PROJECT_ROOT
from tests.support.server import CLIENT_TOKEN
from tests.support.twin_stream import configured
from tests.support.wire import Peer, as_signals, connect, rows


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def stream(server, x: np.ndarray, query: str = "", config: dict | None = None) -> tuple[dict, list[dict]]:
    """Configure, send each row as `predict` with a timestamp, return (ack, replies)."""
    async with connect(server, query) as ws:
        peer = Peer(ws)
        ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name, **(config or {})}})
        if ack["type"] != "config_ack":
            return ack, []
        replies = [
            await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(r), "timestamp": f"t{i}"}})
            for i, r in enumerate(x)
        ]
        return ack, replies


def stats(server) -> dict:
    return server.api.get("/api/v1/inference/stream/stats").raise_for_status().json()


def test_reconnect_with_session_id_resumes_the_session(server):
    first, second = rows(3, seed=41), rows(2, seed=42)
    ack, _ = run(stream(server, first))
    sid = ack["session_id"]
    resumed_ack, _ = run(stream(server, second, query=f"?session_id={sid}"))
    assert resumed_ack["session_id"] == sid and resumed_ack["resumed"] is True
    # resuming through the config message works as well
    again, _ = run(stream(server, second[:1], config={"session_id": sid}))
    assert again["session_id"] == sid
    history = server.api.get(f"/api/v1/inference/stream/history/{sid}?format=json").raise_for_status().json()
    assert [s["timestamp"] for s in history["samples"]] == ["t0", "t1", "t2", "t0", "t1", "t0"]
    sent = np.vstack([first, second, second[:1]])
    got = np.array([[s["boundary"][b] for b in BOUNDARY_SIGNALS] for s in history["samples"]])
    np.testing.assert_array_equal(got, sent)


def test_a_retried_request_id_is_recorded_once_on_the_same_and_on_a_resumed_connection(server):
    x = rows(3, seed=44)

    async def predict(peer, request_id, i: int) -> dict:
        return await peer.ask({"type": "predict", "id": request_id,
                               "data": {"boundary_signals": as_signals(x[i]), "timestamp": f"t{i}"}})

    async def scenario():
        peer, ack = await configured(server)
        replies = [await predict(peer, "r-1", 0), await predict(peer, "r-1", 0), await predict(peer, 7, 1)]
        await peer.ws.close()
        peer, _ = await configured(server, session_id=ack["session_id"])  # the reply was lost: retry
        replies += [await predict(peer, 7, 1), await predict(peer, "r-1", 0), await predict(peer, "r-3", 2)]
        await peer.ws.close()
        return ack["session_id"], replies

    sid, replies = run(scenario())
    assert [r["id"] for r in replies] == ["r-1", "r-1", 7, 7, "r-1", "r-3"]
    assert all(r["type"] == "prediction" for r in replies)  # a retry is answered like the original
    history = server.api.get(f"/api/v1/inference/stream/history/{sid}?format=json").raise_for_status().json()
    assert [s["timestamp"] for s in history["samples"]] == ["t0", "t1", "t2"]


def test_ids_too_long_to_remember_are_still_echoed(server):
    long_id, huge_id = "x" * 300, 2**63

    async def scenario():
        peer, _ = await configured(server)
        replies = [await peer.ask({"type": "predict", "id": request_id,
                                   "data": {"boundary_signals": as_signals(rows(1, seed=45)[0])}}, binary=True)
                   for request_id in (long_id, huge_id)]
        await peer.ws.close()
        return replies

    assert [(r["type"], r["id"]) for r in run(scenario())] == [("prediction", long_id), ("prediction", huge_id)]


def test_unknown_sessions_are_refused(server):
    """(Expiry after session_ttl_s, live and restored from MongoDB: tests/serve_app/twin/test_session_shard.py.)"""
    unknown, _ = run(stream(server, rows(1, seed=43), query="?session_id=no-such-session"))
    assert unknown["type"] == "error" and unknown["error_code"] == "SESSION_NOT_FOUND"
    assert server.api.get("/api/v1/inference/stream/history/no-such-session").status_code == 404


def test_stats_count_connections_and_predictions(server):
    x = rows(7, seed=45)

    async def scenario():
        async with connect(server) as ws:
            peer = Peer(ws)
            ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name, "mode": "batch"}})
            await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x]}})
            live = stats(server)  # sync call while the connection is open
            return ack["session_id"], live

    sid, live = run(scenario())
    entry = next(c for c in live["connections"] if c["session_id"] == sid)
    assert entry["predictions_count"] == 7 and entry["mode"] == "batch" and entry["ensemble_name"] == server.demo.name
    assert live["active_connections"] >= 1 and live["total_predictions"] >= 7 and live["average_latency_ms"] > 0
    time.sleep(0.5)
    assert sid not in [c["session_id"] for c in stats(server)["connections"]]


def test_save_writes_only_to_the_results_folder_and_matches_what_was_sent(server, tmp_path):
    x = rows(5, seed=46)
    ack, replies = run(stream(server, x))
    sid = ack["session_id"]
    target = tmp_path / "evil.csv"
    saved = server.api.post("/api/v1/inference/stream/save",
                       json={"session_id": sid, "format": "csv", "output_path": str(target)}).raise_for_status().json()
    assert saved["status"] == "success" and saved["samples_saved"] == 5
    assert not target.exists()
    path = server.results_dir / saved["output_path"].rsplit("/", 1)[-1]
    assert str(path) == saved["output_path"] and path.is_file()
    table = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(table[0]) == ["timestamp", "latency_ms", *(f"boundary_{s}" for s in BOUNDARY_SIGNALS),
                              *(f"prediction_{s}" for s in TARGET_SIGNALS)]
    assert [r["timestamp"] for r in table] == [f"t{i}" for i in range(5)]
    np.testing.assert_array_equal([[float(r[f"boundary_{s}"]) for s in BOUNDARY_SIGNALS] for r in table], x)
    np.testing.assert_array_equal([[float(r[f"prediction_{s}"]) for s in TARGET_SIGNALS] for r in table],
                                  [[p["data"]["predictions"][t] for t in TARGET_SIGNALS] for p in replies])
    download = server.api.get(saved["download_url"])
    assert download.status_code == 200 and download.content == path.read_bytes()
    as_json = server.api.post("/api/v1/inference/stream/save", json={"session_id": sid, "format": "json"}).json()
    samples = json.loads(server.api.get(as_json["download_url"]).text)["samples"]
    assert [s["predictions"] for s in samples] == [p["data"]["predictions"] for p in replies]


def test_save_and_results_reject_bad_requests(server):
    api = "/api/v1/inference/stream"
    assert server.api.post(api + "/save", json={"session_id": "no-such-session"}).status_code == 404
    assert server.api.post(api + "/save", json={"session_id": "../../etc"}).status_code == 422
    assert server.api.post(api + "/save", json={"session_id": "abc", "format": "xlsx"}).status_code == 422
    assert (
        server.api.post(api + "/save", content=b"not json", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert server.api.get(api + "/results/..%2F..%2Fpyproject.toml").status_code == 404
    assert server.api.get(api + "/results/serve.log").status_code == 404


def test_http_endpoints_list_ensembles_health_and_docs(server):
    assert server.api.get("/healthz").json() == {"status": "ok"}
    listed = server.api.get("/api/v1/ensembles").json()["ensembles"]
    assert {e["ensemble_name"] for e in listed} == {server.demo.name, server.tiny.name}
    demo = next(e for e in listed if e["ensemble_name"] == server.demo.name)
    assert demo["target_signals"] == TARGET_SIGNALS and set(demo["metrics"]) == set(TARGET_SIGNALS)
    paths = server.api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/inference/stream/stats", "/api/v1/inference/stream/save", "/api/v1/ensembles"} <= set(paths)


def test_example_client_streams_the_demo_plant(server):
    result = subprocess.run([sys.executable, "-m", "serve_app.twin.client", "--url", server.ws, "--samples", "40",
                             "--token", CLIENT_TOKEN],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "predicted/actual" in result.stdout
    mae = {part.rsplit(" ", 1)[0]: float(part.rsplit(" ", 1)[1])
           for part in result.stdout.split("mean absolute error per target: ")[1].strip().split(", ")}
    assert list(mae) == TARGET_SIGNALS
    # the demo ensemble tracks the plant: errors are a small fraction of each signal's spread
    spread = simulate(2000, seed=7).target.std(axis=0)
    assert all(mae[t] < 0.3 * spread[i] for i, t in enumerate(TARGET_SIGNALS)), mae


def test_a_newer_connection_takes_over_a_session_that_is_still_connected(server):
    x = rows(6, seed=47)

    async def scenario():
        async with connect(server) as old_ws:
            old = Peer(old_ws)
            ack = await old.ask({"type": "config", "data": {"ensemble_name": server.demo.name}})
            sid = ack["session_id"]
            for r in x[:3]:
                assert (await old.ask({"type": "predict", "data": {"boundary_signals": as_signals(r)}}))[
                    "type"
                ] == "prediction"
            # the client reconnects (say after a network drop) before the server has noticed the old socket die
            async with connect(server, f"?session_id={sid}") as new_ws:
                new = Peer(new_ws)
                resumed = await new.ask({"type": "config", "data": {"ensemble_name": server.demo.name}})
                notice = await asyncio.wait_for(old.recv(), 10)  # the old socket is told and closed
                await asyncio.wait_for(old_ws.wait_closed(), 10)
                for r in x[3:]:
                    assert (await new.ask({"type": "predict", "data": {"boundary_signals": as_signals(r)}}))[
                        "type"
                    ] == "prediction"
                await asyncio.sleep(1.0)  # the old connection's close has reached the shard by now
                during = stats(server)
            return sid, resumed, notice, old_ws.close_code, during

    sid, resumed, notice, close_code, during = run(scenario())
    assert resumed["resumed"] is True and resumed["session_id"] == sid
    assert notice["error_code"] == "SESSION_TAKEN_OVER" and close_code == 4000
    live = {c["session_id"]: c for c in during["connections"]}
    assert sid in live and live[sid]["predictions_count"] == 6  # still connected; nothing lost
    history = server.api.get(f"/api/v1/inference/stream/history/{sid}?format=json").raise_for_status().json()
    assert len(history["samples"]) == 6
