"""Soak: 100,000 twin messages (16 sessions, open all along) and 10,000 store frames through one server
(with configs/serve.env, history_limit 1000); its memory over time.

    python -m bench.soak                          # ~8 minutes on 2 cores
    python -m bench.soak --twin-messages 20000 --store-frames 2000    # quicker

Writes bench/results/soak.json: server RSS after each tenth of the twin messages and after the store
frames, and the growth from the first sample (after warm-up) to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import websockets

from bench.run_suite import RESULTS, streamforge_server
from bench.server_usage import ServerProcesses
from bench.store_load import frames, run_store
from bench.twin_load import STREAM, auth_headers
from models.plant import BOUNDARY_SIGNALS, simulate
from models.repository import ModelRepository
from serve_app.settings import AppSettings, project_path, ray_environment

SESSIONS, PIPELINE = 16, 8


async def twin_messages(sockets: list, count: int, rows: list[dict]) -> int:
    """`count` predict messages spread over the open sessions, PIPELINE in flight on each; errors counted."""
    errors = 0

    async def session(ws, share: int) -> None:
        nonlocal errors
        for start in range(0, share, PIPELINE):
            burst = min(PIPELINE, share - start)
            for i in range(burst):
                await ws.send(json.dumps({"type": "predict", "data": {"boundary_signals": rows[(start + i) % len(rows)]}}))
            for _ in range(burst):
                errors += json.loads(await ws.recv())["type"] == "error"

    await asyncio.gather(*(session(ws, count // len(sockets)) for ws in sockets))
    return errors


async def open_sessions(url: str, ensemble: str) -> list:
    sockets = []
    for _ in range(SESSIONS):
        ws = await websockets.connect(url + STREAM, additional_headers=auth_headers())
        await ws.send(json.dumps({"type": "config", "data": {"ensemble_name": ensemble}}))
        await ws.recv()
        sockets.append(ws)
    return sockets


async def soak(url: str, ensemble: str, total_messages: int, store_frames: int) -> dict:
    server = ServerProcesses()
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in simulate(5000, seed=5).boundary.tolist()]
    samples, errors, start = [], 0, time.perf_counter()
    step = max(total_messages // 10, SESSIONS)
    sockets = await open_sessions(url, ensemble)  # the same sessions all along: their history fills, then caps
    for done in range(step, total_messages + 1, step):
        errors += await twin_messages(sockets, step, rows)
        samples.append({"twin_messages": done, "seconds": round(time.perf_counter() - start, 1),
                        "server_rss_mb": round(server.rss_bytes() / 2**20, 1)})
        print("   ", samples[-1], flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets))
    kiosks, fps = 4, 25.0
    store = await run_store(url, kiosks, fps, store_frames / (kiosks * fps), frames(24))
    samples.append({"store_frames_sent": store["sent"], "seconds": round(time.perf_counter() - start, 1),
                    "server_rss_mb": store["server_rss_mb"]})
    return {"twin_messages": total_messages, "twin_sessions": SESSIONS, "twin_errors": errors, "store": store, "samples": samples,
            "rss_growth_mb": round(samples[-1]["server_rss_mb"] - samples[0]["server_rss_mb"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--twin-messages", type=int, default=100_000)
    parser.add_argument("--store-frames", type=int, default=10_000)
    parser.add_argument("--history-limit", type=int, default=1000,
                        help="samples kept per session; the 16 sessions reach it after 16,000 messages")
    args = parser.parse_args()
    repository = ModelRepository(project_path(AppSettings().model_repository))
    ensemble = [n for n in repository.names() if n.startswith("Ensemble_DemoPlant_")][0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with streamforge_server("soak.log", ray_environment(), {"history_limit": args.history_limit}) as url:
        result = asyncio.run(soak(url, ensemble, args.twin_messages, args.store_frames))
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
    print(f"memory growth {result['rss_growth_mb']} MB over {args.twin_messages} twin messages and "
          f"{result['store']['sent']} store frames; wrote {RESULTS / 'soak.json'}")


if __name__ == "__main__":
    main()
