"""The benchmark suite: StreamForge vs baseline A (the original design) vs the raw model limit, in one run.

    python -m bench.run_suite                # full run, ~10 minutes on 2 cores
    python -m bench.run_suite --seconds 3    # quicker, noisier

Starts each server itself (loopback only), drives it with bench.twin_load / bench.store_load, stops it,
and writes bench/results/suite.json plus PNG plots. Every number is measured in the same run on the
same machine; compare ratios, not absolute values across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import matplotlib
import numpy as np
import yaml

from bench.process_group import stop_process_group
from bench.serve_config import ingress_replicas, override_serve_config
from bench.server_usage import ServerProcesses
from bench.store_load import frames, raw_detector, run_store
from bench.twin_load import idle_sessions, run_load
from models.twin.ensemble import Ensemble
from models.twin.repository import ModelRepository
from serve_app.settings import PROJECT_ROOT, AppSettings, merge_settings, project_path, ray_environment

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results"  # what the benches report (committed)
SCRATCH = Path(tempfile.gettempdir()) / "streamforge-bench"  # config copies, databases, server logs


def write_report(name: str, report: dict, detail: str) -> None:
    """Write `report` to bench/results/<name> and print it without its `detail` entry."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != detail}, indent=2))
    print(f"wrote {RESULTS / name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(ready, timeout_s: float, failure: str) -> None:
    """Poll `ready()` (an HTTP check; a transport error counts as not yet) every second until it is true."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(failure)


def wait_http(url: str, timeout_s: float = 180) -> None:
    _wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, timeout_s, f"{url} not ready after {timeout_s}s")


HAPROXY_STATS = "http://127.0.0.1:8404/stats;csv"  # Ray's HAProxy stats page (RAY_SERVE_HAPROXY_STATS_PORT)


def wait_ingress_replicas_up(replicas: int, timeout_s: float = 60) -> None:
    """Wait until HAProxy routes to all `replicas` ingress replicas themselves. /healthz answers as soon as
    Serve's fallback Python proxy is up, a few seconds before HAProxy's health checks mark the replicas UP,
    and a WebSocket opened in between stays on the slow fallback path for its lifetime. Ray adds each replica
    to HAProxy's configuration as it starts (a reload each, about a second apart): WebSockets opened while
    only the first is listed all land on it and stay there."""
    def all_up() -> bool:
        rows = [line.split(",") for line in httpx.get(HAPROXY_STATS, timeout=2).text.splitlines()]
        listed = [row[17] for row in rows if len(row) > 17 and row[1].startswith("SERVE_REPLICA")]
        return len(listed) == replicas and all(status == "UP" for status in listed)

    _wait_until(all_up, timeout_s, f"HAProxy did not list {replicas} ingress replicas UP within {timeout_s}s")


class Process:
    """A server subprocess in its own process group, stopped with SIGINT then SIGKILL."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.log = log.open("w")
        self.popen = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True, env={**os.environ, **(env or {})})

    def stop(self) -> None:
        stop_process_group(self.popen)
        self.log.close()


def _rows_per_s(predict, x: np.ndarray, seconds: float, workers: int = 1) -> float:
    """Rows/s of `predict(x)` called back to back for `seconds` by `workers` threads at once."""
    def calls() -> int:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            predict(x)
            n += len(x)
        return n

    predict(x)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        rows = sum(pool.map(lambda _: calls(), range(workers)))
    return round(rows / (time.perf_counter() - start), 1)


def model_limit(ensemble: Ensemble, seconds: float) -> dict:
    """Raw ensemble throughput with ONNX Runtime and with PyTorch, batched, in this process: one call at a
    time on all cores, and (ONNX Runtime) one call per core on one thread each, as the ingress runs it."""
    from bench.baseline_original import forward, load

    torch_model = load(ensemble.folder)
    cores = os.cpu_count() or 1
    one_thread = Ensemble(ensemble.folder, intra_op_threads=1, runtime="cpu")
    rng = np.random.default_rng(0)
    out = {}
    for batch in (256, 1024):
        x = (
            rng.normal(size=(batch, len(ensemble.manifest.boundary_signals))) * ensemble.boundary_scaler.std
            + ensemble.boundary_scaler.mean
        )
        out[f"onnxruntime_batch{batch}"] = _rows_per_s(ensemble.predict, x, seconds)
        out[f"onnxruntime_{cores}x1thread_batch{batch}"] = _rows_per_s(one_thread.predict, x, seconds, cores)
        out[f"pytorch_batch{batch}"] = _rows_per_s(lambda rows: forward(torch_model, rows), x, seconds)
    out["best"] = max(out.values())
    return out


def twin_matrix(url: str, ensemble: str, seconds: float, connections: list[int], msgpack: bool,
                server: ServerProcesses = ServerProcesses()) -> list[dict]:
    runs = []
    for encoding in (["json", "msgpack"] if msgpack else ["json"]):
        for batch in (1, 32, 256):
            for n in (connections if batch == 1 else [c for c in connections if c <= 16]):
                run = asyncio.run(run_load(url, ensemble, n, batch, encoding == "msgpack", seconds, server))
                print("   ", run, flush=True)
                runs.append(run)
    return runs


def plot(results: dict) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [("StreamForge", results["streamforge"]["twin"]), ("baseline A", results["baseline_a"]["twin"])]
    for label, runs in series:
        single = [r for r in runs if r["batch"] == 1 and r["encoding"] == "json"]
        axes[0].plot([r["connections"] for r in single], [r["predictions_per_s"] for r in single], "o-", label=label)
        axes[1].plot([r["connections"] for r in single], [r["latency_ms"]["p99"] for r in single], "o-", label=label)
    axes[0].axhline(results["limit"]["best"], ls="--", c="grey", label="model limit (batched, no network)")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="concurrent sessions",
        ylabel="predictions/s",
        title="Twin, single mode (JSON)",
    )
    axes[1].set(xscale="log", xlabel="concurrent sessions", ylabel="p99 latency (ms)", title="Twin, single mode (JSON)")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "twin_single.png", dpi=110)
    plt.close(fig)


@contextmanager
def streamforge_server(log_name: str, env: dict | None = None, args: dict | None = None,
                       replicas: dict[str, int | dict] | None = None):
    """`serve run` of configs/serve.yaml (application `args` and deployments' `replicas` overridden, see
    `override_serve_config`) on free loopback ports with a fresh embedded database (nothing a previous bench
    stored - enrolled products, a live detector version - carries over); yields its ws:// URL."""
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve.yaml").read_text())
    port = free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    database = {"embedded_port": free_port(), "dir": str(SCRATCH / "bench-db")}
    limits = {"max_connections_per_address": 5000}  # every load comes from loopback
    override_serve_config(config, merge_settings({"database": database, "limits": limits}, args or {}), replicas or {})
    SCRATCH.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(SCRATCH / "bench-db", ignore_errors=True)
    config_path = SCRATCH / "serve.bench.yaml"
    config_path.write_text(yaml.safe_dump(config))
    server = Process([str(Path(sys.executable).with_name("serve")), "run", str(config_path)], SCRATCH / log_name,
                     env={"RAY_USAGE_STATS_ENABLED": "0", **(env or {})})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=300)
        if (env or {}).get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
            wait_ingress_replicas_up(ingress_replicas(config))
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.stop()


def paced(url: str, ensemble: str, rate: float, seconds: float, server: ServerProcesses = ServerProcesses()) -> dict:
    """64 sessions offering `rate` single predictions/s in all: latency at that load."""
    run = asyncio.run(run_load(url, ensemble, 64, 1, False, seconds, server, rate=rate))
    print("    paced", run, flush=True)
    return run


STORE_DRAWS = 4  # kiosk phase draws per store run (bench.store_load.run_store), pooled


def run_streamforge(ensemble: str, args, target_rate: float) -> dict:
    """StreamForge as `make serve` runs it: the twin matrix, latency at the target load, idle sessions, store."""
    with streamforge_server("streamforge.log", ray_environment()) as url:
        ours = {"twin": twin_matrix(url, ensemble, args.seconds, args.connections, True),
                "paced": paced(url, ensemble, target_rate, args.seconds)}
        jpegs = frames(24)
        ours["store"] = [
            asyncio.run(run_store(url, k, fps, args.store_seconds, jpegs, draws=STORE_DRAWS if k > 1 else 1))
            for fps in (10.0, 30.0)
            for k in (1, 4, 8)
        ]
        ours["store"].append(asyncio.run(run_store(url, 4, 10.0, args.store_seconds, jpegs, aligned=True)))
        for run in ours["store"]:
            print("   ", run, flush=True)
        # last: 1,000 sessions closing at once keep the embedded database busy for seconds (README, "Known limits")
        ours["idle_sessions"] = asyncio.run(idle_sessions(url, ensemble, 1000))
        print("   ", ours["idle_sessions"], flush=True)
        return ours


# predictions and frames through the pools
MODEL_POOLS = {"twin": {"inference": "pool"}, "store": {"inference": "pool"}}
VARIANTS = {  # what each lever is worth: StreamForge with one setting changed back
    "model_pools": ({}, MODEL_POOLS),
    "default_proxy": ({"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"},
                      MODEL_POOLS),  # Ray Serve's Python proxy, as in the first release
    "history_off": ({}, {"twin": {"history_limit": 0}}),  # what durable history costs
}


def run_variant(ensemble: str, args, target_rate: float, env: dict, overrides: dict) -> dict:
    """Single mode (64 sessions, closed loop and paced), batch 256 msgpack (16 sessions) and 4 kiosks at 10 fps
    of one variant; the detector pool is up from the start (serve.yaml starts it at the first frame)."""
    with streamforge_server("variant.log", {**ray_environment(), **env}, overrides, {"YOLODetector": 1}) as url:
        runs = [asyncio.run(run_load(url, ensemble, 64, 1, False, args.seconds)),
                asyncio.run(run_load(url, ensemble, 16, 256, True, args.seconds))]
        for run in runs:
            print("   ", run, flush=True)
        store = asyncio.run(run_store(url, 4, 10.0, args.store_seconds, frames(24), draws=STORE_DRAWS))
        print("   ", store, flush=True)
        return {"twin": runs, "paced": paced(url, ensemble, target_rate, args.seconds), "store": [store]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--store-seconds", type=float, default=20.0)
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=None,
                        help="also measure StreamForge with single levers turned back (model pools, default "
                             "proxy, no history); no names: all of them")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    repository = ModelRepository(project_path(AppSettings().twin.model_repository))
    name = [n for n in repository.names() if n.startswith("Ensemble_DemoPlant_")][0]
    results: dict = {"machine": {"cpus": os.cpu_count()}, "ensemble": name}

    print("limit: raw ensemble", flush=True)
    results["limit"] = model_limit(Ensemble(repository.path(name)), args.seconds / 2)
    print("   ", results["limit"], flush=True)

    print("baseline A: the original design", flush=True)
    port = free_port()
    baseline = Process(
        [sys.executable, "-m", "bench.baseline_original", "--port", str(port)], SCRATCH / "baseline_a.log"
    )
    baseline_usage = ServerProcesses(markers=("bench.baseline_original",))
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/ensembles")
        results["baseline_a"] = {
            "twin": twin_matrix(f"ws://127.0.0.1:{port}", name, args.seconds, args.connections, False, baseline_usage)
        }
        single = next(r for r in results["baseline_a"]["twin"] if r["batch"] == 1 and r["connections"] == 64)
        target_rate = results["target_rate"] = round(3 * single["predictions_per_s"])
        results["baseline_a"]["paced"] = paced(
            f"ws://127.0.0.1:{port}", name, target_rate, args.seconds, baseline_usage
        )
    finally:
        baseline.stop()

    print("StreamForge as shipped: configs/serve.yaml + configs/serve.env", flush=True)
    results["streamforge"] = run_streamforge(name, args, target_rate)
    if args.variants is not None:
        results["variants"] = {}
        for label in args.variants or VARIANTS:
            env, overrides = VARIANTS[label]
            print(f"StreamForge variant: {label}", flush=True)
            results["variants"][label] = run_variant(name, args, target_rate, env, overrides)
    results["raw_detector"] = raw_detector(frames(24))
    print("    raw detector", results["raw_detector"], flush=True)
    (RESULTS / "suite.json").write_text(json.dumps(results, indent=2))
    plot(results)
    print(f"wrote {RESULTS / 'suite.json'} and plots", flush=True)


if __name__ == "__main__":
    main()
