"""Stopping a server started in its own session (its own local Ray cluster): the benchmark suite's
servers and the test server."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def stop_process_group(process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGINT (a clean `serve run` shutdown), then SIGKILL to the whole group if it has not exited in time;
    then SIGKILL to whatever is left of its session (the process must have been started with
    `start_new_session=True`): Ray's HAProxy outlives `serve run` in its own process group and would keep
    its stats and metrics ports (8404, 9101) from the next server."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in session_members(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def session_members(session_id: int) -> list[int]:
    """Pids of the live processes in session `session_id` (Linux /proc)."""
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # after the command: state, ppid, pgrp, session
            members.append(int(proc.name))
    return members
