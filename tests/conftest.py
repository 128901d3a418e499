"""Shared fixtures: the committed demo ensemble, and one real StreamForge server for the whole session.

The server fixture writes a copy of configs/serve.yaml with a free port, a temporary model repository
(the committed demo ensemble plus a tiny second ensemble with other target signals), its own embedded
MongoDB port and data folder and short session retention, runs `serve run` on it in a subprocess, and
stops it at the end.
"""


from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import skimage
import yaml

from bench.serve_config import override_serve_config
from models.store.real_scenes import build as build_real_scenes
from models.twin.dataset import SignalTable
from models.twin.ensemble import Ensemble
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from models.twin.repository import ModelRepository
from models.twin.train import train_ensemble
from tests.support.paths import PROJECT_ROOT
from tests.support.server import (
    ADMIN_TOKEN,
    AUTH_SECRET,
    CLIENT_TOKEN,
    DEMO_REPOSITORY,
    ENROLLMENT,
    HTTP_BURST,
    HTTP_REQUESTS_PER_S,
    MAX_CONNECTIONS_PER_ADDRESS,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    OTHER_CLIENT_TOKEN,
    SESSION_TTL_S,
    ServeProcess,
    Server,
    free_port,
)


@pytest.fixture(scope="session")
def demo_repository() -> ModelRepository:
    return ModelRepository(DEMO_REPOSITORY)


@pytest.fixture(scope="session")
def demo_ensemble_name(demo_repository: ModelRepository) -> str:
    names = [n for n in demo_repository.names() if n.startswith("Ensemble_DemoPlant_")]
    assert names, f"no committed demo ensemble in {DEMO_REPOSITORY}"
    return names[0]










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
    port, mongo_port = free_port(), free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    args = dict(
        twin={
            "model_repository": str(repository),
            "results_dir": str(work / "results"),
            "session_ttl_s": SESSION_TTL_S,
        },
        store={"face_interval_s": 0.2},
        database={"embedded_port": mongo_port, "dir": str(work / "db")},
        limits={
            "max_message_bytes": MAX_MESSAGE_BYTES,
            "max_frame_bytes": MAX_FRAME_BYTES,
            "max_connections_per_address": MAX_CONNECTIONS_PER_ADDRESS,
            "http_requests_per_s": HTTP_REQUESTS_PER_S,
            "http_burst": HTTP_BURST,
        },
        enrollment={**ENROLLMENT, "real_scenes": str(work / "real_scenes"), "work_dir": str(work / "enrollment")},
        auth={
            "enabled": True,
            "admin_tokens": [ADMIN_TOKEN],
            "client_tokens": [CLIENT_TOKEN, OTHER_CLIENT_TOKEN],
            "secret": AUTH_SECRET,
        },
    )
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
