"""Resident memory of the server's processes, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def server_rss_bytes(markers: tuple[str, ...] = ("ray::", "ray/", "serve", "raylet", "gcs_server")) -> int:
    """Sum of RSS over processes whose command line mentions Ray or Serve (this process excluded)."""
    total = 0
    me = str(Path("/proc/self").resolve().name)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == me:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not any(m in cmdline for m in markers) or "bench." in cmdline:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total
