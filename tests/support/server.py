"""The test server: `serve run` of configs/serve.yaml in its own process group, and the settings and
tokens the tests start it with (the `server` fixture in tests/conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from bench.process_group import stop_process_group
from bench.run_suite import wait_ingress_replicas_up
from bench.serve_config import ingress_replicas, override_serve_config
from models.twin.ensemble import Ensemble
from serve_app.settings import ray_environment
from tests.support.paths import PROJECT_ROOT

DEMO_REPOSITORY = PROJECT_ROOT / "data" / "model_repository"
SESSION_TTL_S = 60.0  # longer than any restart in the fault tests (expiry: tests/serve_app/twin/test_session_shard.py)
MAX_MESSAGE_BYTES = 256 * 1024
MAX_FRAME_BYTES = 512 * 1024
MAX_CONNECTIONS_PER_ADDRESS = 220
POOL_MODE = {"twin": {"inference": "pool"}, "store": {"inference": "pool"}}
HTTP_REQUESTS_PER_S, HTTP_BURST = 100.0, 400.0  # every test client comes from loopback
# the test server runs with auth on: every client presents one of these
ADMIN_TOKEN = "test-admin-token-0123456789"
CLIENT_TOKEN = "test-twin-client-token-0123456789"
OTHER_CLIENT_TOKEN = "test-other-twin-client-token-9876543210"  # a second twin client
AUTH_SECRET = "test-secret-for-kiosk-tokens-0123456789abcdef"
# product enrollment at a size CI can afford: one short epoch, a few dozen pictures (the model is bad on
# purpose: the quality gate must refuse it)
ENROLLMENT = {"cpus": 0.25, "rendered": 16, "composites": 48, "negatives": 16, "hard_negatives": 8, "replay": 8,
              "val": 9, "test": 24, "epochs": 1, "batch": 16}


class ServeProcess:
    """`serve run <config>` in its own process group (and so its own local Ray cluster)."""

    def __init__(self, config_path: Path, log: Path, url: str):
        self.config_path, self.log, self.url = config_path, log, url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"} | {"RAY_USAGE_STATS_ENABLED": "0"}
        env |= ray_environment()  # as `make serve` runs it: HAProxy ingress
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("serve")), "run", str(self.config_path)],
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_ready(self.url, self.process, self.log)
        # WebSockets opened before HAProxy lists every ingress replica would all stay on the first one
        wait_ingress_replicas_up(ingress_replicas(yaml.safe_load(self.config_path.read_text())))

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process_group(self.process)
        self.process = None


@dataclass
class Server:
    http: str
    ws: str
    results_dir: Path
    demo: Ensemble
    tiny: Ensemble
    mongo_uri: str
    process: ServeProcess

    def restart(self, replicas: dict[str, int | dict] | None = None, **args) -> None:
        """Stop the whole server (Ray cluster, embedded database) and start it again on the same data,
        with the application `args` changed by `args` and deployments' `replicas` (see `override_serve_config`)."""
        self.process.stop()
        config = yaml.safe_load(self.process.config_path.read_text())
        override_serve_config(config, args, replicas or {})
        self.process.config_path.write_text(yaml.safe_dump(config))
        self.process.start()

    def in_pool_mode(self) -> None:
        """Twin predictions and kiosk frames through the EnsemblePredictor and YOLODetector pools (the paths
        with Ray hops), restarting the server once if it runs another mode."""
        app = yaml.safe_load(self.process.config_path.read_text())["applications"][0]
        if not all(app["args"][section].get("inference") == "pool" for section in ("twin", "store")):
            self.restart({"StreamIngress": 1, "YOLODetector": 1}, **POOL_MODE)

    def __post_init__(self):
        self.api = httpx.Client(base_url=self.http, headers=self.headers(ADMIN_TOKEN), timeout=60)

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def async_api(self, token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
        """An async HTTP client for the server, with `token`."""
        return httpx.AsyncClient(base_url=self.http, headers=self.headers(token), timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"server not ready after {timeout_s}s:\n{log.read_text()[-4000:]}")
