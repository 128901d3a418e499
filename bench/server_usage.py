"""Resident memory and CPU time of the server's processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_DATABASE_MARKER = "nx-27017"
RAY_SERVER = ("ray::", "ray/", "serve", "raylet", "gcs_server", EMBEDDED_DATABASE_MARKER)
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ServerProcesses:
    """The processes whose command line contains one of `markers` (this load generator excluded)."""

    markers: tuple[str, ...] = RAY_SERVER
    exclude: tuple[str, ...] = ("bench.twin_load", "bench.store_load", "bench.run_suite", "pytest")

    def pids(self) -> list[Path]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmdline for m in self.markers) and not any(x in cmdline for x in self.exclude):
                found.append(proc)
        return found

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.pids():
            try:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time consumed so far by the processes alive now."""
        total = 0
        for proc in self.pids():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                continue
        return total / TICKS


EMBEDDED_DATABASE = ServerProcesses((EMBEDDED_DATABASE_MARKER,))  # the server's embedded MongoDB-compatible store
