"""Stopping a server started in its own process group (its own local Ray cluster): the benchmark
suite's servers and the test server."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGINT (a clean `serve run` shutdown), then SIGKILL to the whole group if it has not exited in time."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
