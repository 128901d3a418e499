"""Residual-monitor cost per 1,000 rows: this tree's monitor against an earlier commit's, in one run.

    python -m bench.monitor_speed                    # against 7fd26ec (the last monitor stepped in Python)
    python -m bench.monitor_speed --reference HEAD~3

Both monitors replay the recorded demo-plant inputs (tests/fixtures/monitor_replay/demo_plant.npz: 6,000
samples, six targets, six faults) with alarm-flood protection, in messages of 1, 10, 100 and 1,000 rows,
each in its own process (the reference from `git archive <reference> models`); compilation happens in a
warm-up pass before timing. Writes bench/results/monitor_speed.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from serve_app.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
REPLAY = PROJECT_ROOT / "tests" / "fixtures" / "monitor_replay" / "demo_plant.npz"
MESSAGE_ROWS = (1, 10, 100, 1000)
DEFAULT_REFERENCE = "7fd26ec"


def time_monitor(repeats: int) -> dict[str, float]:
    """ms per 1,000 rows of the `models` package on sys.path, per message size (the best of `repeats`)."""
    from models.twin.monitor import AlarmFlood, MonitorCalibration, ResidualMonitor

    inputs = np.load(REPLAY)
    calibration = MonitorCalibration.model_validate_json(str(inputs["calibration"]))
    targets, timestamps = [str(t) for t in inputs["targets"]], [str(t) for t in inputs["timestamps"]]
    predictions, actual = inputs["predictions"], inputs["actual"]

    def run(rows: int, samples: int) -> float:
        monitor = ResidualMonitor(targets, calibration, None, AlarmFlood())
        started = time.perf_counter()
        for start in range(0, samples, rows):
            part = slice(start, start + rows)
            monitor.update(predictions[part], actual[part], timestamps[part])
        return (time.perf_counter() - started) / samples * 1e6

    run(100, 200)  # warm-up (compiles a compiled monitor)
    return {str(rows): min(run(rows, len(timestamps)) for _ in range(repeats)) for rows in MESSAGE_ROWS}


def measure(tree: Path, repeats: int) -> dict[str, float]:
    """time_monitor in a fresh process with `tree` first on the import path."""
    code = f"import json, sys; from bench.monitor_speed import time_monitor; print(json.dumps(time_monitor({repeats})))"
    env_path = f"{tree}:{PROJECT_ROOT}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, cwd=tree)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="git commit of the monitor to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "archive", args.reference, "models"], cwd=PROJECT_ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        reference = measure(Path(folder), args.repeats)
    current = measure(PROJECT_ROOT, args.repeats)
    result = {
        "reference_commit": args.reference,
        "replay": "tests/fixtures/monitor_replay/demo_plant.npz (6,000 samples, 6 targets, flood protection on)",
        "ms_per_1000_rows": {"reference": reference, "this_tree": current},
        "speedup": {rows: reference[rows] / current[rows] for rows in current},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "monitor_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
