"""StreamForge's metrics through a real Prometheus (Debian's `prometheus`), scraping the test server's Ray
node as configs/prometheus/prometheus.yml says; the alert rules (promtool) and the Grafana dashboard's
queries against the live series."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from bench.process_group import stop_process_group
from bench.run_suite import free_port, wait_http
from models.twin.plant import simulate
from tests.support.kiosk import Kiosk, kiosk
from tests.support.paths import PROJECT_ROOT
from tests.support.store_frames import product_frame
from tests.support.twin_stream import configured
from tests.support.wire import as_signals, rows, run

PROMETHEUS_DIR = PROJECT_ROOT / "configs" / "prometheus"
DASHBOARD = PROJECT_ROOT / "configs" / "grafana" / "streamforge.json"


class Prometheus:
    """A Prometheus server with the shipped scrape config and rules, scraping every second."""

    def __init__(self, work: Path):
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                shutil.which("prometheus"),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / "prometheus.log").open("w"),
            start_new_session=True,
        )
        wait_http(f"{self.url}/-/ready", timeout_s=60)

    def query(self, expr: str) -> list[dict]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert reply["status"] == "success", (expr, reply)
        return reply["data"]["result"]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def settled(self, exprs: list[str], quiet_s: float = 25.0, timeout_s: float = 120.0) -> dict[str, float]:
        """Values of `exprs` once none has changed for `quiet_s` (Ray reports metrics every ~10 s): what
        the earlier tests did is all counted."""
        values, since, deadline = {}, time.time(), time.time() + timeout_s
        while time.time() < deadline:
            now = {e: self.value(e) for e in exprs}
            if now != values:
                values, since = now, time.time()
            elif time.time() - since >= quiet_s:
                return values
            time.sleep(2)
        raise AssertionError(f"metrics kept changing: {values}")

    def wait_for(self, expr: str, wanted: float, timeout_s: float = 90) -> float:
        """Poll until `expr` reaches `wanted` (Ray reports metrics every few seconds); the last value."""
        deadline = time.time() + timeout_s
        while (value := self.value(expr)) < wanted and time.time() < deadline:
            time.sleep(1)
        return value


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    assert shutil.which("prometheus"), "Debian's prometheus is needed (make test installs it)"
    instance = Prometheus(tmp_path_factory.mktemp("prometheus"))
    yield instance
    stop_process_group(instance.process)


def test_rules_pass_promtool_checks_and_unit_tests():
    for command in (["check", "rules", "streamforge-rules.yml"], ["test", "rules", "streamforge-rules.test.yml"]):
        done = subprocess.run([shutil.which("promtool"), *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


def test_prometheus_sees_what_clients_did(server, prometheus):
    tiny = server.tiny.name  # an ensemble no other test streams through: its counts are this test's
    predictions = f'sum(ray_streamforge_predictions_total{{ensemble="{tiny}"}})'
    errors = 'sum(ray_streamforge_errors_total{stream="twin",code="UNKNOWN_MESSAGE_TYPE"})'
    missing = 'sum(ray_streamforge_alerts_total{kind="missing"})'
    batches = 'sum(ray_streamforge_twin_latency_ms_count{type="predict_batch"})'
    frames = 'sum(ray_streamforge_frames_total{outcome="processed"})'
    frame_latencies = 'sum(ray_streamforge_frame_latency_ms_count)'
    before = prometheus.settled([predictions, errors, batches, missing, frames, frame_latencies])
    x = rows(40, seed=90)

    async def traffic():
        peer, _ = await configured(server, ensemble_name=tiny, mode="batch", batch_size=20)
        await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[0])}})
        for start in (0, 20):
            await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x[start:start + 20]]}})
        for _ in range(3):
            await peer.ask({"type": "teleport"})
        await peer.ws.close()
        demo, _ = await configured(server)  # a target that stops reporting after its first reading: `missing`
        targets = server.demo.describe()["target_signals"]
        data = simulate(12, seed=91)
        for i in range(12):
            actual = {t: (None if i and t == targets[0] else float(v)) for t, v in zip(targets, data.target[i])}
            await demo.ask({"type": "predict", "data": {"boundary_signals": as_signals(data.boundary[i]),
                                                        "actual_signals": actual}})
        await demo.ws.close()
        async with kiosk(server, "metrics-kiosk") as ws:
            shop = Kiosk(ws)
            for seed in range(3):
                await shop.show(product_frame([1], seed=700 + seed))

    run(traffic())
    assert prometheus.wait_for(predictions, before[predictions] + 41) == before[predictions] + 41
    assert prometheus.wait_for(batches, before[batches] + 2) == before[batches] + 2
    assert prometheus.wait_for(errors, before[errors] + 3) == before[errors] + 3
    assert prometheus.wait_for(missing, before[missing] + 1) >= before[missing] + 1
    assert prometheus.wait_for(frames, before[frames] + 3) == before[frames] + 3
    assert prometheus.wait_for(frame_latencies, before[frame_latencies] + 3) == before[frame_latencies] + 3
    assert prometheus.value('sum(ray_streamforge_connection_limit)') > 0


def test_every_dashboard_panel_queries_live_series(server, prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    live = {s["__name__"] for s in httpx.get(f"{prometheus.url}/api/v1/series",
                                             params={"match[]": '{__name__=~"ray_streamforge_.*"}'}).json()["data"]}
    for expr in exprs:
        prometheus.query(expr)  # parses and evaluates (the query API answers 400 otherwise)
        names = {n for n in live if n in expr or n.rsplit("_", 1)[0] in expr}
        assert names, f"{expr} names no series the server exports ({sorted(live)})"
