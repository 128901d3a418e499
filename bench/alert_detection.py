"""Early-warning quality of the residual monitor: detection delay per fault type and false alarms on
normal data, for a few threshold settings, on the demo plant with its ground-truth fault labels. Every
detector counts, the boundary inputs' `envelope` and `input_level` included.

    python -m bench.alert_detection                  # ~2 minutes on 2 cores
    python -m bench.alert_detection --runs 3 --normal-samples 2000   # quick

Writes bench/results/alerts.json and alerts.png. Fault sizes are in units of each target's calibrated
residual standard deviation (the residual the monitor watches: measured minus lagged prediction).
Delay is counted in samples from the fault's first sample to the first matching alert.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import matplotlib
import numpy as np
from tqdm import tqdm

from models.twin.ensemble import Ensemble
from models.twin.monitor.calibration import AlertThresholds, MonitorCalibration
from models.twin.monitor.residual_monitor import ResidualMonitor
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, Fault, simulate
from models.twin.repository import ModelRepository
from serve_app.settings import PROJECT_ROOT

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results"
FAULT_AT, FAULT_LENGTH, RUN_SAMPLES = 300, 600, 1200


@dataclass(frozen=True)
class Scenario:
    """A fault to inject; `sigmas` scales sensor drift / spike sizes by the target's residual std."""

    label: str
    kind: str
    signal: str | None
    sigmas: float = 0.0
    magnitude: float = 0.0

    def fault(self, calibration: MonitorCalibration) -> Fault:
        size = self.magnitude
        if self.sigmas:
            size = self.sigmas * calibration.signals[self.signal].residual_std
        return Fault(self.kind, FAULT_AT, FAULT_AT + FAULT_LENGTH, self.signal, size)


SCENARIOS = [
    Scenario("drift 1 sd", "drift", "Temperature_target_2", sigmas=1.0),
    Scenario("drift 3 sd", "drift", "Temperature_target_2", sigmas=3.0),
    Scenario("drift 10 sd", "drift", "Temperature_target_2", sigmas=10.0),
    Scenario("drift 10 sd (pressure)", "drift", "Pressure_target_1", sigmas=10.0),
    Scenario("spike 30 sd", "spike", "Power_target_1", sigmas=30.0),
    Scenario("stuck", "stuck", "Temperature_target_1"),
    Scenario("dropout", "dropout", "Power_target_2"),
    Scenario("fouling 20%", "fouling", None, magnitude=0.2),
    Scenario("leak 0.1 bar", "leak", None, magnitude=0.1),
]


def scaled(calibration: MonitorCalibration, factor: float) -> dict[str, AlertThresholds]:
    """The calibrated thresholds with drift and spike thresholds multiplied by `factor`."""
    return {t: th.model_copy(update={"drift_threshold": th.drift_threshold * factor,
                                     "spike_threshold": th.spike_threshold * factor})
            for t, th in calibration.thresholds.items()}


def run_monitor(ensemble: Ensemble, thresholds: dict[str, AlertThresholds], faults: tuple[Fault, ...],
                samples: int, seed: int):
    data = simulate(samples, seed=seed, faults=faults)
    monitor = ResidualMonitor(TARGET_SIGNALS, ensemble.manifest.monitor, thresholds, boundary=BOUNDARY_SIGNALS)
    return data, monitor.update(ensemble.predict(data.boundary), data.target, data.timestamps, data.boundary)


def detection_delay(scenario_fault: Fault, data, events) -> int | None:
    """Samples from fault start to the first alert of an expected (signal, kind); None if never."""
    expected = set(scenario_fault.expected_alerts())
    hits = [data.timestamps.index(e.sample) for e in events if e.opened and (e.signal, e.kind) in expected]
    hits = [i for i in hits if i >= scenario_fault.start]
    return min(hits) - scenario_fault.start if hits else None


def measure(ensemble: Ensemble, factors: list[float], runs: int, normal_samples: int) -> dict:
    calibration = ensemble.manifest.monitor
    results = {"ensemble": ensemble.name, "fault_length": FAULT_LENGTH, "runs": runs,
               "normal_samples": normal_samples, "settings": []}
    work = len(factors) * (len(SCENARIOS) * runs + 1)
    with tqdm(total=work, desc="alert detection", unit="run") as bar:
        for factor in factors:
            thresholds = scaled(calibration, factor)
            _, events = run_monitor(ensemble, thresholds, (), normal_samples, seed=90_000)
            bar.update()
            false_alarms = sum(e.opened for e in events)
            setting = {"threshold_factor": factor, "false_alarms": false_alarms,
                       "false_alarms_per_10k": false_alarms * 10_000 / normal_samples, "faults": {}}
            for scenario in SCENARIOS:
                fault = scenario.fault(calibration)
                delays = []
                for run in range(runs):
                    data, events = run_monitor(ensemble, thresholds, (fault,), RUN_SAMPLES, seed=10_000 + run)
                    delays.append(detection_delay(fault, data, events))
                    bar.update()
                found = [d for d in delays if d is not None]
                setting["faults"][scenario.label] = {
                    "detected": len(found), "runs": runs,
                    "median_delay": float(np.median(found)) if found else None,
                    "delays": delays}
            results["settings"].append(setting)
    return results


def plot(results: dict, path) -> None:
    factors = [s["threshold_factor"] for s in results["settings"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label in results["settings"][0]["faults"]:
        delays = [s["faults"][label]["median_delay"] for s in results["settings"]]
        left.plot(factors, [np.nan if d is None else d for d in delays], marker="o", label=label)
    left.axhline(50, color="grey", linestyle=":", label="target 50 samples")
    left.set(xlabel="threshold factor (x calibrated)", ylabel="median detection delay (samples)",
             title="Detection delay by fault")
    left.legend(fontsize=7)
    right.plot(factors, [s["false_alarms_per_10k"] for s in results["settings"]], marker="o")
    right.axhline(1, color="grey", linestyle=":", label="target 1 / 10k")
    right.set(xlabel="threshold factor (x calibrated)", ylabel="false alarms per 10,000 normal samples",
              title="False alarms on normal data")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure alert detection delay and false alarms.")
    parser.add_argument("--ensemble", default=None, help="ensemble name (default: newest DemoPlant ensemble)")
    parser.add_argument("--factors", default="0.8,1.0,1.25", help="threshold factors to compare")
    parser.add_argument("--runs", type=int, default=10, help="runs per fault type")
    parser.add_argument("--normal-samples", type=int, default=50_000)
    args = parser.parse_args()
    repository = ModelRepository(PROJECT_ROOT / "data" / "model_repository")
    name = args.ensemble or next(n for n in repository.names() if n.startswith("Ensemble_DemoPlant_"))
    results = measure(Ensemble(repository.path(name)), [float(f) for f in args.factors.split(",")], args.runs,
                      args.normal_samples)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alerts.json").write_text(json.dumps(results, indent=2))
    plot(results, RESULTS / "alerts.png")
    for s in results["settings"]:
        print(f"thresholds x{s['threshold_factor']}: {s['false_alarms_per_10k']:.2f} false alarms / 10k")
        for label, f in s["faults"].items():
            print(f"  {label:24s} detected {f['detected']}/{f['runs']}  median delay {f['median_delay']}")


if __name__ == "__main__":
    main()
