"""The input-level detector on a real plant: SKAB's eight sensors read as a twin's boundary inputs.

    python -m bench.skab_inputs          # seconds

`input_level` (models.twin.monitor.input_level) watches a twin's boundary inputs against their normal
level. SKAB records no manipulated inputs, so its sensors stand in for them: per run, each sensor's level
and drift limit are calibrated on the run's first 400 rows as training calibrates a boundary signal
(`calibrate.input_levels`, the default baseline half-life), and the whole run is replayed through the
residual monitor with those inputs and no targets, in messages of bench.skab's size, with the server's
alarm-flood protection. Reported, as bench.skab does for the twins' alerts: the alarm figures (ISA-18.2)
on the anomaly-free run and on the normal rows of each fault run between row 400 and its fault, and how
many of the 34 faults an input-level alert opened within (delay from the fault's first row).

Writes bench/results/skab_inputs.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from bench.run_suite import write_report
from bench.skab import BATCH, DATASET, STALE_AFTER_S, TRAIN_ROWS, Run, first_fault, pooled, runs
from models.twin.monitor.calibrate import DEFAULT_BASELINE_HALFLIFE, DEFAULT_MARGIN, input_levels
from models.twin.monitor.calibration import MonitorCalibration
from models.twin.monitor.flood import AlarmFlood, FloodLimits
from models.twin.monitor.residual_monitor import ResidualMonitor


def input_level_changes(run: Run) -> list[tuple[int, tuple[str, str], bool]]:
    """(row, (signal, kind), opened) of every alert change on `run` with its sensors watched as inputs
    whose levels come from the run's first TRAIN_ROWS rows."""
    calibration = MonitorCalibration(signals={}, thresholds={}, validation_samples=TRAIN_ROWS,
                                     threshold_margin=DEFAULT_MARGIN, baseline_halflife=DEFAULT_BASELINE_HALFLIFE,
                                     input_levels=input_levels(run.signals, run.values[:TRAIN_ROWS]))
    monitor = ResidualMonitor([], calibration, flood=AlarmFlood(FloodLimits()), boundary=run.signals)
    row_of = {stamp: row for row, stamp in enumerate(run.timestamps)}
    no_targets = np.empty((len(run.values), 0))
    changes = []
    for start in range(0, len(run.values), BATCH):
        part = slice(start, start + BATCH)
        for event in monitor.update(no_targets[part], no_targets[part], run.timestamps[part], run.values[part]):
            changes.append((row_of[event.sample], (event.signal, event.kind), event.opened))
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=DATASET, help="SKAB's data folder")
    parser.add_argument("--out", default="skab_inputs.json")
    args = parser.parse_args()
    fault_runs, normal_run = runs(args.dataset)
    normal_figures, delays, per_run = [], [], []
    for run in tqdm(fault_runs, desc="fault runs", unit="run"):
        changes = input_level_changes(run)
        opened = [(row, signal) for row, (signal, _), is_opened in changes if is_opened]
        fault = first_fault(run)
        inside = [row for row, _ in opened if fault is not None and fault[0] <= row < fault[1]]
        if inside:
            delays.append(min(inside) - fault[0])
        if fault is not None and fault[0] > TRAIN_ROWS:
            normal_figures.append(run.alarm_figures(changes, slice(TRAIN_ROWS, fault[0])))
        per_run.append({"run": run.name, "fault_rows": fault, "opened": opened})
    free = normal_run.alarm_figures(input_level_changes(normal_run), slice(TRAIN_ROWS, len(normal_run.timestamps)))
    write_report(args.out, {
        "protocol": "SKAB's sensors read as boundary inputs; levels from each run's first 400 rows "
                    "(calibrate.input_levels, baseline half-life 150 samples); the monitor replays the whole run "
                    "with no targets, flood protection on",
        "alarm_figures": {"stale_after_s": STALE_AFTER_S, "anomaly_free": free.to_dict(),
                          "normal_rows_of_fault_runs": pooled(normal_figures)},
        "faults_with_an_input_level_alert": f"{len(delays)} of {len(fault_runs)}",
        "detection_delay_s": {"median": float(np.median(delays)) if delays else None,
                              "p90": float(np.percentile(delays, 90)) if delays else None},
        "per_run": per_run,
    }, "per_run")


if __name__ == "__main__":
    main()
