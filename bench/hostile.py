"""Hostile clients and an unlucky network against a real server, as configs/serve.yaml ships it.

    python -m bench.hostile            # ~3 minutes; writes bench/results/hostile.json
    python -m bench.hostile --only stall --out stall-before.json   # one part

- bombs: 4 kiosks send 5 decompression-bomb frames each while a twin client streams; the server's memory
  growth and the twin client's p99 before and during.
- reconnect: a client reconnects (and resumes) while its old socket is still open; samples lost.
- shard_kill: a 20,000-sample stream during which the session shards are SIGKILLed; samples missing from
  the session's history afterwards.
- stall: a single-mode twin client's p99 alone, and while another client (in its own process) sends
  1,000-row batches with measured values, each after the last one's reply, and downloads its history
  (10,000 rows and growing; CSV and JSON in turn), round after round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
from pathlib import Path

import httpx
import numpy as np
import websockets
from tqdm import tqdm

from bench.hostile_images import jpeg_declaring, png_bomb
from bench.process_group import session_members
from bench.run_suite import RESULTS, SCRATCH, streamforge_server
from bench.server_usage import ServerProcesses
from bench.twin_load import run_load
from models.twin.manifest import EnsembleManifest
from models.twin.plant import simulate
from models.twin.repository import ModelRepository
from serve_app.settings import AppSettings, project_path, ray_environment

STREAM = "/api/v1/inference/stream"
SINGLE_RATE = 50.0  # messages/s of the single-mode session whose latency is watched
SHARD_PROCESS = b"ray::SessionShard"


def _signals(names: list[str], row: np.ndarray) -> dict[str, float]:
    return dict(zip(names, map(float, row)))


class Twin:
    """A raw twin-stream client (no retries: every loss shows)."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, url: str, ensemble: str, query: str = "", **config) -> tuple["Twin", dict]:
        ws = await websockets.connect(url + STREAM + query, max_size=2**26)
        twin = cls(ws)
        return twin, await twin.ask("config", {"ensemble_name": ensemble, **config})

    async def ask(self, kind: str, data: dict) -> dict:
        await self.ws.send(json.dumps({"type": kind, "data": data}))
        return json.loads(await self.ws.recv())


async def single_p99(url: str, ensemble: str, seconds: float) -> float:
    """p99 latency (ms) of one single-mode session paced at SINGLE_RATE messages/s (bench.twin_load)."""
    return (await run_load(url, ensemble, 1, 1, False, seconds, rate=SINGLE_RATE))["latency_ms"]["p99"]


async def bombs(url: str, ensemble: str, manifest: EnsembleManifest, seconds: float = 20.0) -> dict:
    server = ServerProcesses()
    quiet = await single_p99(url, ensemble, seconds / 2)
    before = server.rss_bytes()
    peak, replies = before, []
    bombs = [png_bomb(30000, 30000), jpeg_declaring(20000, 20000)]  # made before: the watched client shares this loop

    async def kiosk(k: int) -> None:
        async with websockets.connect(f"{url}/ws/bomb-{k}", max_size=2**24) as ws:
            for i in range(5):
                await ws.send(bombs[i % 2])
                while (reply := json.loads(await ws.recv()))["type"] != "error":
                    pass
                replies.append(reply["error_code"])

    async def watch_memory() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.rss_bytes())
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch_memory())
    during, _ = await asyncio.gather(single_p99(url, ensemble, seconds / 2),
                                     asyncio.gather(*(kiosk(k) for k in range(4))))
    watcher.cancel()
    return {"bomb_frames": len(replies), "refused_image_too_large": replies.count("IMAGE_TOO_LARGE"),
            "server_memory_growth_mb": round((peak - before) / 2**20, 1),
            "twin_p99_ms_quiet": quiet, "twin_p99_ms_during_bombs": during}


async def reconnect(url: str, ensemble: str, manifest: EnsembleManifest, samples: int = 200) -> dict:
    boundary = manifest.boundary_signals
    x = simulate(2 * samples, seed=8).boundary
    old, ack = await Twin.open(url, ensemble)
    session = ack["session_id"]
    for row in x[:samples]:
        await old.ask("predict", {"boundary_signals": _signals(boundary, row)})
    new, resumed = await Twin.open(url, ensemble, f"?session_id={session}")  # the old socket is still open
    for row in x[samples:]:
        await new.ask("predict", {"boundary_signals": _signals(boundary, row)})
    notice = json.loads(await asyncio.wait_for(old.ws.recv(), 10))
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=url.replace("ws://", "http://")) as api:
        stats = (await api.get(f"{STREAM}/stats")).json()
        history = (await api.get(f"{STREAM}/history/{session}?format=json")).json()
    await new.ws.close()
    live = {c["session_id"]: c for c in stats["connections"]}
    return {"samples_sent": 2 * samples, "samples_in_history": len(history["samples"]),
            "lost_samples": 2 * samples - len(history["samples"]), "resumed": resumed.get("resumed"),
            "old_socket_told": notice.get("error_code"), "session_connected_after_old_close": session in live}


def _shard_pids() -> list[int]:
    """The session-shard processes of the server this bench started (its `serve run` leads their session)."""
    def cmdline(pid) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""
    config = str(SCRATCH / "serve.bench.yaml").encode()
    leaders = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and config in cmdline(p.name)]
    return [pid for leader in leaders for pid in session_members(leader) if cmdline(pid).startswith(SHARD_PROCESS)]


async def shard_kill(
    url: str, ensemble: str, manifest: EnsembleManifest, samples: int = 20000, batch: int = 20
) -> dict:
    boundary = manifest.boundary_signals
    x = simulate(samples, seed=9).boundary
    twin, ack = await Twin.open(url, ensemble, mode="batch", batch_size=batch)
    session, killed_at, victims = ack["session_id"], None, []
    for start in tqdm(range(0, samples, batch), desc="shard kill stream", unit="msg"):
        if killed_at is None and start >= samples // 2:
            victims = _shard_pids()  # every shard: the one holding this session among them
            for victim in victims:
                os.kill(victim, signal.SIGKILL)
            killed_at = start
        reply = await twin.ask("predict_batch", {"batch": [_signals(boundary, r) for r in x[start:start + batch]]})
        assert reply["type"] == "prediction_batch", reply
    await twin.ws.close()
    await asyncio.sleep(2.0)
    async with httpx.AsyncClient(base_url=url.replace("ws://", "http://"), timeout=60) as api:
        reply = await api.get(f"{STREAM}/history/{session}?format=json")
    kept = len(reply.json()["samples"]) if reply.status_code == 200 else 0
    return {"samples_streamed": samples, "shards_killed": len(victims), "killed_after_samples": killed_at,
            "history_status": reply.status_code,
            "samples_in_history": kept, "lost_samples": samples - kept}


async def heavy_client(url: str, ensemble: str, manifest: EnsembleManifest, stop, ready) -> int:
    """Sends 1,000-row batches with measured values (the next once the last one is answered; alerts pushed
    meanwhile are read past) and downloads the session's history (as CSV and as JSON in turn), round after
    round until `stop` is set (a multiprocessing.Event; `ready` is set
    once the history is there); the number of rounds."""
    data = simulate(10_000, seed=10)
    batches = [json.dumps({"type": "predict_batch", "data": {
        "batch": [_signals(manifest.boundary_signals, r) for r in data.boundary[start:start + 1000]],
        "actual_signals": [_signals(manifest.target_signals, r) for r in data.target[start:start + 1000]]}})
        for start in range(0, 10_000, 1000)]
    heavy, ack = await Twin.open(url, ensemble, mode="batch", batch_size=1000)

    async def predict(message: str) -> None:
        """Send one batch and read up to its reply (alerts pushed meanwhile are read past)."""
        await heavy.ws.send(message)
        while (reply := json.loads(await heavy.ws.recv()))["type"] in ("alert", "alert_cleared"):
            pass
        assert reply["type"] == "prediction_batch", reply

    for message in batches:  # a 10,000-row history to download
        await predict(message)
    ready.set()
    rounds = 0
    async with httpx.AsyncClient(base_url=url.replace("ws://", "http://"), timeout=60) as api:
        while not stop.is_set():
            await predict(batches[rounds % 10])
            export = "csv" if rounds % 2 == 0 else "json"
            (await api.get(f"{STREAM}/history/{ack['session_id']}?format={export}")).raise_for_status()
            rounds += 1
    await heavy.ws.close()
    return rounds


def _heavy_process(url: str, ensemble: str, manifest: EnsembleManifest, stop, ready, rounds) -> None:
    rounds.value = asyncio.run(heavy_client(url, ensemble, manifest, stop, ready))


async def stall(url: str, ensemble: str, manifest: EnsembleManifest, seconds: float = 20.0) -> dict:
    """The watched client's p99 alone, then while heavy_client runs in another process (so that the load
    generator's own work on the heavy client's replies does not delay the watched client's)."""
    quiet = await single_p99(url, ensemble, seconds / 2)
    context = multiprocessing.get_context("spawn")
    stop, ready, rounds = context.Event(), context.Event(), context.Value("i", 0)
    heavy = context.Process(target=_heavy_process, args=(url, ensemble, manifest, stop, ready, rounds))
    heavy.start()
    try:
        while not ready.is_set():
            assert heavy.is_alive(), "the heavy client failed"
            await asyncio.sleep(0.2)
        during = await single_p99(url, ensemble, seconds / 2)
    finally:
        stop.set()
        heavy.join(120)
    return {"single_p99_ms_alone": quiet, "single_p99_ms_under_load": during, "load_rounds": rounds.value}


PARTS = {"bombs": bombs, "reconnect": reconnect, "shard_kill": shard_kill, "stall": stall}


async def run_parts(url: str, parts: list[str]) -> dict:
    repository = ModelRepository(project_path(AppSettings().twin.model_repository))
    ensemble = next(n for n in repository.names() if n.startswith("Ensemble_DemoPlant_"))
    manifest = repository.manifest(ensemble)
    results = {}
    for name in parts:
        print(f"{name} ...", flush=True)
        results[name] = await PARTS[name](url, ensemble, manifest)
        print("   ", results[name], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    parser.add_argument("--out", default="hostile.json", help="file name under bench/results/")
    args = parser.parse_args()
    with streamforge_server("hostile.log", ray_environment(), args={"twin": {"history_limit": 20000}}) as url:
        results = asyncio.run(run_parts(url, args.only or list(PARTS)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS / args.out}")


if __name__ == "__main__":
    main()
