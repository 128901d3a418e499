"""The console scripts pyproject.toml installs: each one runs and explains itself with --help."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT

PROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("script", sorted(PROJECT["scripts"]))
def test_console_script_answers_help(script):
    executable = Path(sys.executable).with_name(script)
    assert executable.exists(), f"{script} is not installed: pip install -e ."
    done = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "--" in done.stdout  # argparse's help, with its options
