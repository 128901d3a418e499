"""Finding the server's Ray worker processes by name, to kill them in fault-injection tests."""

from __future__ import annotations

from pathlib import Path


def ray_process_pids(prefix: str) -> list[int]:
    """PIDs of processes whose command line starts with `prefix` (Ray names workers `ray::<Actor>...`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(prefix.encode()):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids
