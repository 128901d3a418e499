"""Soak: 100,000 twin messages (16 sessions, open all along), then 4 kiosks streaming at 10 fps for 10
minutes, through one server (with configs/serve.env, history_limit 1000); its memory over time.

    python -m bench.soak                                      # ~17 minutes on 2 cores
    python -m bench.soak --twin-messages 0 --store-minutes 10  # the store alone
    python -m bench.soak --twin-messages 20000 --store-minutes 1    # quicker

Writes bench/results/soak.json: server RSS after each tenth of the twin messages and after each store
minute, and the growth from the first sample (after warm-up) to the last.
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
from models.twin.plant import BOUNDARY_SIGNALS, simulate
from models.twin.repository import ModelRepository
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
                await ws.send(
                    json.dumps({"type": "predict", "data": {"boundary_signals": rows[(start + i) % len(rows)]}})
                )
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


async def soak(url: str, ensemble: str, total_messages: int, store_minutes: int) -> dict:
    server = ServerProcesses()
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in simulate(5000, seed=5).boundary.tolist()]
    samples, errors, start = [], 0, time.perf_counter()
    step = max(total_messages // 10, SESSIONS)
    sockets = await open_sessions(url, ensemble)  # the same sessions all along: their history fills, then caps
    for done in range(step, total_messages + 1, step) if total_messages else ():
        errors += await twin_messages(sockets, step, rows)
        samples.append({"twin_messages": done, "seconds": round(time.perf_counter() - start, 1),
                        "server_rss_mb": round(server.rss_bytes() / 2**20, 1)})
        print("   ", samples[-1], flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets))
    jpegs, store = frames(24), []
    for minute in range(1, store_minutes + 1):  # 4 kiosks at 10 fps, one run a minute
        store.append(await run_store(url, 4, 10.0, 60.0, jpegs))
        samples.append({"store_minutes": minute, "seconds": round(time.perf_counter() - start, 1),
                        "store_frames_processed": store[-1]["processed"],
                        "frame_to_event_p95_ms": store[-1]["frame_to_event_ms"]["p95"],
                        "server_rss_mb": store[-1]["server_rss_mb"]})
        print("   ", samples[-1], flush=True)
    return {"twin_messages": total_messages, "twin_sessions": SESSIONS, "twin_errors": errors, "store": store,
            "samples": samples, "rss_growth_mb": round(samples[-1]["server_rss_mb"] - samples[0]["server_rss_mb"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--twin-messages", type=int, default=100_000)
    parser.add_argument("--store-minutes", type=int, default=10, help="minutes of 4 kiosks at 10 fps")
    parser.add_argument("--history-limit", type=int, default=1000,
                        help="samples kept per session; the 16 sessions reach it after 16,000 messages")
    args = parser.parse_args()
    repository = ModelRepository(project_path(AppSettings().twin.model_repository))
    ensemble = [n for n in repository.names() if n.startswith("Ensemble_DemoPlant_")][0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with streamforge_server("soak.log", ray_environment(), {"twin": {"history_limit": args.history_limit}}) as url:
        result = asyncio.run(soak(url, ensemble, args.twin_messages, args.store_minutes))
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
    print(f"memory growth {result['rss_growth_mb']} MB over {args.twin_messages} twin messages and "
          f"{args.store_minutes} store minutes; wrote {RESULTS / 'soak.json'}")


if __name__ == "__main__":
    main()
