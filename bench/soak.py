"""Soak: 100,000 twin messages and 10,000 store frames through one server; its memory over time.

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
from serve_app.settings import AppSettings, project_path

SESSIONS, PIPELINE = 16, 8


async def twin_messages(url: str, ensemble: str, count: int, rows: list[dict]) -> int:
    """`count` predict messages over SESSIONS connections, PIPELINE in flight on each; errors counted."""
    errors = 0

    async def session(share: int) -> None:
        nonlocal errors
        async with websockets.connect(url + STREAM, additional_headers=auth_headers()) as ws:
            await ws.send(json.dumps({"type": "config", "data": {"ensemble_name": ensemble}}))
            await ws.recv()
            for start in range(0, share, PIPELINE):
                burst = min(PIPELINE, share - start)
                for i in range(burst):
                    await ws.send(json.dumps({"type": "predict", "data": {"boundary_signals": rows[(start + i) % len(rows)]}}))
                for _ in range(burst):
                    errors += json.loads(await ws.recv())["type"] == "error"

    await asyncio.gather(*(session(count // SESSIONS) for _ in range(SESSIONS)))
    return errors


async def soak(url: str, ensemble: str, total_messages: int, store_frames: int) -> dict:
    server = ServerProcesses()
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in simulate(5000, seed=5).boundary.tolist()]
    samples, errors, start = [], 0, time.perf_counter()
    step = max(total_messages // 10, SESSIONS)
    for done in range(step, total_messages + 1, step):
        errors += await twin_messages(url, ensemble, step, rows)
        samples.append({"twin_messages": done, "seconds": round(time.perf_counter() - start, 1),
                        "server_rss_mb": round(server.rss_bytes() / 2**20, 1)})
        print("   ", samples[-1], flush=True)
    kiosks, fps = 4, 25.0
    store = await run_store(url, kiosks, fps, store_frames / (kiosks * fps), frames(24))
    samples.append({"store_frames_sent": store["sent"], "seconds": round(time.perf_counter() - start, 1),
                    "server_rss_mb": store["server_rss_mb"]})
    return {"twin_messages": total_messages, "twin_errors": errors, "store": store, "samples": samples,
            "rss_growth_mb": round(samples[-1]["server_rss_mb"] - samples[0]["server_rss_mb"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--twin-messages", type=int, default=100_000)
    parser.add_argument("--store-frames", type=int, default=10_000)
    args = parser.parse_args()
    repository = ModelRepository(project_path(AppSettings().model_repository))
    ensemble = [n for n in repository.names() if n.startswith("Ensemble_DemoPlant_")][0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with streamforge_server("soak.log") as url:
        result = asyncio.run(soak(url, ensemble, args.twin_messages, args.store_frames))
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
    print(f"memory growth {result['rss_growth_mb']} MB over {args.twin_messages} twin messages and "
          f"{result['store']['sent']} store frames; wrote {RESULTS / 'soak.json'}")


if __name__ == "__main__":
    main()
