"""Load generator for the twin stream: N concurrent sessions, closed loop, bounded in time.

    python -m bench.twin_load --url ws://127.0.0.1:8000 --connections 1 16 64 --batch 1 32 --seconds 10
    python -m bench.twin_load --url ws://127.0.0.1:8000 --idle-sessions 1000

Each session configures the newest demo ensemble, then sends one message (`predict`, or `predict_batch`
of --batch rows) and waits for its reply before the next, as the original clients do - back to back,
or with --rate on a schedule (a sensor's pace: latency at a given load, counted from each message's
scheduled time so a server that falls behind is charged for it). Reports
predictions/s and message latency percentiles; --idle-sessions opens that many configured sessions,
keeps them open and idle, and reports how much the server's resident memory grew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from urllib.parse import urlparse

import msgpack
import numpy as np
import websockets

from bench.server_usage import EMBEDDED_DATABASE, ServerProcesses
from models.twin.plant import BOUNDARY_SIGNALS, simulate
from serve_app.twin.client import _pick_ensemble

STREAM = "/api/v1/inference/stream"
CONNECT_S = 1.0  # paced sessions start their schedule this long after connecting (time to connect them all)


def auth_headers() -> dict[str, str]:
    """`Authorization` for a server with auth on: the token in $STREAMFORGE_TOKEN, if set."""
    token = os.environ.get("STREAMFORGE_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _loopback_only(url: str) -> None:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"benchmarks only target loopback, not {host}")


async def _session(url: str, ensemble: str, rows: list[dict], batch: int, binary: bool, deadline: float,
                   latencies: list[float], interval_s: float | None = None, offset_s: float = 0.0) -> int:
    """One session until `deadline`: back to back (closed loop), or with `interval_s` one message on each
    tick of its own schedule, latency then counted from the tick (a late send counts as waiting)."""
    pack = msgpack.packb if binary else json.dumps
    async with websockets.connect(url + STREAM, max_size=2**26, additional_headers=auth_headers()) as ws:
        await ws.send(
            pack(
                {
                    "type": "config",
                    "data": {
                        "ensemble_name": ensemble,
                        "mode": "batch" if batch > 1 else "single",
                        "batch_size": max(batch, 1),
                    },
                }
            )
        )
        await ws.recv()
        done, i = 0, 0
        first_tick = time.perf_counter() + offset_s
        while time.perf_counter() < deadline:
            if batch > 1:
                message = {"type": "predict_batch", "data": {"batch": rows[i:i + batch]}}
            else:
                message = {"type": "predict", "data": {"boundary_signals": rows[i]}}
            i = (i + batch) % (len(rows) - batch)
            start = time.perf_counter()
            if interval_s is not None:
                start = first_tick + done // batch * interval_s
                if start >= deadline:
                    break
                await asyncio.sleep(max(0.0, start - time.perf_counter()))
            await ws.send(pack(message))
            reply = await ws.recv()
            latencies.append((time.perf_counter() - start) * 1000)
            reply = msgpack.unpackb(reply) if isinstance(reply, bytes) else json.loads(reply)
            if reply["type"] == "error":
                raise RuntimeError(reply)
            done += batch
        return done


async def run_load(url: str, ensemble: str, connections: int, batch: int, binary: bool, seconds: float,
                   server: ServerProcesses = ServerProcesses(), rate: float | None = None) -> dict:
    """One run: closed loop, or with `rate` messages/s offered in all (spread evenly over the sessions);
    returns throughput, latency percentiles, server memory and CPU use."""
    data = simulate(4096, seed=99)
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in data.boundary.tolist()]
    latencies: list[float] = []
    if rate is not None and seconds <= CONNECT_S:
        raise ValueError(f"a paced run needs more than {CONNECT_S:g} s: its schedule starts after the sessions connect")
    interval = None if rate is None else connections / rate
    cpu_before, database_before = server.cpu_seconds(), EMBEDDED_DATABASE.cpu_seconds()
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(*(_session(url, ensemble, rows, batch, binary, deadline, latencies, interval,
                                             CONNECT_S + k * (interval or 0.0) / connections)
                                    for k in range(connections)))
    elapsed = time.perf_counter() - start
    cpu_cores = (server.cpu_seconds() - cpu_before) / elapsed
    database_cores = (EMBEDDED_DATABASE.cpu_seconds() - database_before) / elapsed
    lat = np.asarray(latencies)
    return {
        "connections": connections,
        "batch": batch,
        "encoding": "msgpack" if binary else "json",
        "offered_per_s": rate,
        "seconds": round(elapsed, 2),
        "messages": len(lat),
        "predictions": int(sum(counts)),
        "predictions_per_s": round(sum(counts) / elapsed, 1),
        "latency_ms": {p: round(float(np.percentile(lat, q)), 2) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "server_rss_mb": round(server.rss_bytes() / 2**20, 1),
        "server_cpu_cores": round(cpu_cores, 2),
        "database_cpu_cores": round(database_cores, 3),  # the embedded database's process (part of the server's)
    }


async def idle_sessions(url: str, ensemble: str, count: int) -> dict:
    """Open `count` configured sessions, hold them idle, and measure the server's memory growth."""
    server = ServerProcesses()
    before = server.rss_bytes()
    sockets = []
    row = dict(zip(BOUNDARY_SIGNALS, simulate(1, seed=1).boundary[0].tolist()))
    for start in range(0, count, 50):
        async def open_one():
            ws = await websockets.connect(url + STREAM, additional_headers=auth_headers())
            await ws.send(json.dumps({"type": "config", "data": {"ensemble_name": ensemble}}))
            await ws.recv()
            await ws.send(json.dumps({"type": "predict", "data": {"boundary_signals": row}}))
            await ws.recv()
            return ws
        sockets += await asyncio.gather(*(open_one() for _ in range(min(50, count - start))))
    await asyncio.sleep(3)  # let session flushes land
    after = server.rss_bytes()
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"idle_sessions": count, "server_rss_before_mb": round(before / 2**20, 1),
            "server_rss_after_mb": round(after / 2**20, 1), "growth_mb": round((after - before) / 2**20, 1)}


async def main_async(args) -> dict:
    _loopback_only(args.url)
    ensemble = args.ensemble or await _pick_ensemble(args.url.replace("ws://", "http://"),
                                                     os.environ.get("STREAMFORGE_TOKEN"))
    results: dict = {"url": args.url, "ensemble": ensemble, "runs": []}
    if args.idle_sessions:
        results["idle"] = await idle_sessions(args.url, ensemble, args.idle_sessions)
        print(results["idle"])
        return results
    for encoding in args.encodings:
        for batch in args.batch:
            for n in args.connections:
                run = await run_load(args.url, ensemble, n, batch, encoding == "msgpack", args.seconds, rate=args.rate)
                print(run)
                results["runs"].append(run)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000")
    parser.add_argument("--ensemble")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--encodings", nargs="+", default=["json"], choices=["json", "msgpack"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="offer this many messages/s in all instead of a closed loop")
    parser.add_argument("--idle-sessions", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
