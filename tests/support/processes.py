"""Finding the test server's own Ray worker processes by name, to kill them in fault-injection tests
(only processes of the server the tests started: never another server on the machine)."""

from __future__ import annotations

from pathlib import Path

from bench.process_group import session_members


def ray_process_pids(server, prefix: str) -> list[int]:
    """PIDs of the test server's processes whose command line starts with `prefix` (Ray names workers
    `ray::<Actor>...`); the server runs in its own session, and so do all its processes."""
    pids = []
    for pid in session_members(server.process.process.pid):
        try:
            if (Path("/proc") / str(pid) / "cmdline").read_bytes().startswith(prefix.encode()):
                pids.append(pid)
        except OSError:
            continue
    return pids


# command-line prefixes of the server's Ray workers
PREDICTOR = "ray::ServeReplica:streamforge:EnsemblePredictor"
INGRESS = "ray::ServeReplica:streamforge:StreamIngress"
SHARDS = "ray::SessionShard"
DETECTOR = "ray::ServeReplica:streamforge:YOLODetector"
