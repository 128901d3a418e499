"""Shared fixtures: the committed demo ensemble, and one real StreamForge server for the whole session.

The server fixture writes a copy of configs/serve.yaml with a free port, a temporary model repository
(the committed demo ensemble plus a tiny second ensemble with other target signals), its own embedded
MongoDB port and data folder and short session retention, runs `serve run` on it in a subprocess, and
stops it at the end.
"""


from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import skimage
import yaml

from bench.process_group import stop_process_group
from models.dataset import SignalTable
from models.ensemble import Ensemble
from models.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from models.real_scenes import build as build_real_scenes
from models.repository import ModelRepository
from models.train import train_ensemble
from serve_app.settings import override_serve_config, ray_environment

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_REPOSITORY = PROJECT_ROOT / "data" / "model_repository"
SESSION_TTL_S = 4.0
MAX_MESSAGE_BYTES = 256 * 1024
MAX_FRAME_BYTES = 512 * 1024
MAX_CONNECTIONS_PER_ADDRESS = 220
POOL_MODE = {"twin_inference": "pool", "store_inference": "pool"}
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


@pytest.fixture(scope="session")
def demo_repository() -> ModelRepository:
    return ModelRepository(DEMO_REPOSITORY)


@pytest.fixture(scope="session")
def demo_ensemble_name(demo_repository: ModelRepository) -> str:
    names = [n for n in demo_repository.names() if n.startswith("Ensemble_DemoPlant_")]
    assert names, f"no committed demo ensemble in {DEMO_REPOSITORY}"
    return names[0]


class ServeProcess:
    """`serve run <config>` in its own process group (and so its own local Ray cluster)."""

    def __init__(self, config_path: Path, log: Path, url: str):
        self.config_path, self.log, self.url = config_path, log, url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"} | {"RAY_USAGE_STATS_ENABLED": "0"}
        env |= ray_environment()  # as `make serve` runs it: HAProxy ingress
        with self.log.open("a") as out:
            self.process = subprocess.Popen([str(Path(sys.executable).with_name("serve")), "run", str(self.config_path)],
                                            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        _wait_ready(self.url, self.process, self.log)

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
        if not all(app["args"].get(k) == "pool" for k in ("twin_inference", "store_inference")):
            self.restart({"StreamIngress": 1, "YOLODetector": 1}, **POOL_MODE)

    def __post_init__(self):
        self.api = httpx.Client(base_url=self.http, headers=self.headers(ADMIN_TOKEN), timeout=60)

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def async_api(self, token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
        """An async HTTP client for the server, with `token`."""
        return httpx.AsyncClient(base_url=self.http, headers=self.headers(token), timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
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


def pytest_collection_modifyitems(items):
    """Tests that restart the shared server run last, so they cost one restart and disturb no other test."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_server") is not None)


@pytest.fixture(scope="session")
def server(tmp_path_factory, demo_repository, demo_ensemble_name) -> Server:
    work = tmp_path_factory.mktemp("server")
    repository = work / "model_repository"
    shutil.copytree(demo_repository.path(demo_ensemble_name), repository / demo_ensemble_name)
    data = simulate(800, seed=21)
    tiny_targets = TARGET_SIGNALS[:3]
    tiny_folder = train_ensemble(SignalTable(data.boundary, data.target[:, :3], None), BOUNDARY_SIGNALS, tiny_targets,
                                 repository, "Tiny", epochs=1, boost_epochs=1, d_model=16, num_layers=1, nhead=2,
                                 boost_d_model=8, boost_layers=1, delta_r2=-1.0)  # boost every target
    scenes = work / "scene_sources"  # scikit-image's photos but the coffee cup (the enrollment tests' product)
    scenes.mkdir()
    for photo in (Path(skimage.__file__).parent / "data").glob("*"):
        if photo.suffix in (".png", ".jpg") and photo.stem != "coffee":
            shutil.copy(photo, scenes)
    build_real_scenes(work / "real_scenes", [scenes])
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "serve.yaml").read_text())
    port, mongo_port = _free_port(), _free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    args = dict(model_repository=str(repository), results_dir=str(work / "results"),
                session_ttl_s=SESSION_TTL_S, max_message_bytes=MAX_MESSAGE_BYTES,
                embedded_mongo_port=mongo_port, db_dir=str(work / "db"), face_interval_s=0.2,
                max_frame_bytes=MAX_FRAME_BYTES,
                max_connections_per_address=MAX_CONNECTIONS_PER_ADDRESS,
                http_requests_per_s=HTTP_REQUESTS_PER_S, http_burst=HTTP_BURST,
                enrollment={**ENROLLMENT, "real_scenes": str(work / "real_scenes"), "work_dir": str(work / "enrollment")},
                auth={"enabled": True, "admin_tokens": [ADMIN_TOKEN], "client_tokens": [CLIENT_TOKEN, OTHER_CLIENT_TOKEN],
                      "secret": AUTH_SECRET})
    # serve.yaml's inference settings (twin predictions and kiosk frames inside the ingress), as users run it;
    # tests of the pool paths call `server.in_pool_mode()` (they run last, see restarts_server). Connection
    # and rate limits are per replica: the limit tests count on one ingress replica.
    override_serve_config(config, args, {"StreamIngress": 1})
    config_path = work / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config))
    process = ServeProcess(config_path, work / "serve.log", f"http://127.0.0.1:{port}")
    try:
        process.start()
        yield Server(process.url, f"ws://127.0.0.1:{port}", work / "results", Ensemble(repository / demo_ensemble_name),
                     Ensemble(tiny_folder), f"mongodb://127.0.0.1:{mongo_port}", process)
    finally:
        process.stop()
