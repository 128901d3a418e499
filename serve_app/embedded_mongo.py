"""Which MongoDB the app uses: pymongo only. `MONGODB_URI` picks any MongoDB; without it an embedded
MongoDB wire-protocol server (nx-27017, SQLite-backed) runs on loopback with its data in the project's
data folder, owned by a detached Ray actor so every replica on this node shares it.
"""

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import ray

logger = logging.getLogger("streamforge.database")
EMBEDDED_ACTOR = "streamforge-embedded-mongo"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded MongoDB server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"embedded MongoDB server did not listen on port {port} within {timeout_s}s")


class EmbeddedMongo:
    """Runs `nx-27017` on 127.0.0.1:<port> with one SQLite file per database under `data_dir`."""

    def __init__(self, data_dir: str, port: int):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.port = port
        server = Path(sys.executable).with_name("nx-27017")
        self.process = subprocess.Popen(
            [str(server), "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port),
             "--pid-file", str(Path(data_dir) / "nx-27017.pid"), "--log-file", str(Path(data_dir) / "nx-27017.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        _wait_for_port(port, self.process)
        logger.warning("embedded MongoDB (nx-27017) on 127.0.0.1:%d, data in %s - set MONGODB_URI for a real MongoDB",
                       port, data_dir)

    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"


def mongo_uri(configured: str | None, data_dir: Path, port: int) -> str:
    """The MongoDB to use: `configured` or $MONGODB_URI, else the embedded server (started if needed)."""
    uri = configured or os.environ.get("MONGODB_URI")
    if uri:
        return uri
    actor = ray.remote(EmbeddedMongo).options(name=EMBEDDED_ACTOR, namespace="streamforge", get_if_exists=True,
                                              lifetime="detached", num_cpus=0, max_restarts=-1)
    return ray.get(actor.remote(str(data_dir), port).uri.remote())
