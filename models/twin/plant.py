"""Demo plant: a counter-flow heat exchanger with a circulation pump.

The simulator produces the kind of data a digital twin is trained on: slowly wandering boundary
conditions (inlet temperatures and pressures, flows, ambient temperature, a bypass valve, a pump speed)
and target sensors that follow from them through real process physics (effectiveness-NTU heat
transfer, quadratic pressure losses, pump affinity laws), with first-order sensor/process lags and
Gaussian measurement noise. Faults can be injected with ground-truth labels (see `Fault`): sensor
drift, spikes, a stuck sensor, dropouts, and process faults (exchanger fouling, a cold-side leak).

    python -m models.twin.plant --samples 20000 --seed 1 --out data/demo/plant.csv
    python -m models.twin.plant --samples 1000000 --excitation 2 --out data/demo/identification.csv
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

BOUNDARY_SIGNALS = [
    "Temperature_boundary_1",  # hot-side inlet temperature, degC
    "Temperature_boundary_2",  # cold-side inlet temperature, degC
    "Temperature_boundary_3",  # ambient temperature, degC
    "Flow_boundary_1",  # hot-side mass flow, kg/s
    "Flow_boundary_2",  # cold-side mass flow, kg/s
    "Pressure_boundary_1",  # hot-side inlet pressure, bar
    "Pressure_boundary_2",  # cold-side inlet pressure, bar
    "Valve_boundary_1",  # cold-side bypass valve opening, 0..1
    "Speed_boundary_1",  # circulation pump speed, rpm
]
TARGET_SIGNALS = [
    "Temperature_target_1",  # hot-side outlet temperature, degC
    "Temperature_target_2",  # cold-side outlet temperature (after bypass mixing), degC
    "Power_target_1",  # heat duty, kW
    "Pressure_target_1",  # hot-side outlet pressure, bar
    "Pressure_target_2",  # cold-side outlet pressure, bar
    "Power_target_2",  # pump electrical power, kW
]

# (mean, std, correlation time in samples) of each boundary signal's Ornstein-Uhlenbeck process
_BOUNDARY_PROCESS = {
    "Temperature_boundary_1": (85.0, 7.0, 160.0),
    "Temperature_boundary_2": (18.0, 4.0, 220.0),
    "Temperature_boundary_3": (15.0, 5.0, 300.0),
    "Flow_boundary_1": (2.0, 0.35, 100.0),
    "Flow_boundary_2": (3.0, 0.5, 120.0),
    "Pressure_boundary_1": (5.0, 0.4, 140.0),
    "Pressure_boundary_2": (4.0, 0.35, 140.0),
    "Valve_boundary_1": (0.3, 0.12, 200.0),
    "Speed_boundary_1": (1450.0, 120.0, 120.0),
}
_SENSOR_NOISE = np.array([0.15, 0.12, 2.0, 0.01, 0.01, 0.05])  # per target, in its own unit
LAG_SAMPLES = np.array([3.0, 4.0, 3.0, 1.0, 1.0, 2.0])  # first-order time constants per target
_CP_WATER = 4.186  # kJ/(kg K)


# the alert kind each fault should raise, and on which target signals
FAULT_KINDS = {"drift": "drift", "spike": "spike", "stuck": "stuck", "dropout": "missing",
               "fouling": "drift", "leak": "drift"}
PROCESS_FAULT_SIGNALS = {"fouling": ["Temperature_target_1", "Temperature_target_2", "Power_target_1"],
                         "leak": ["Pressure_target_2"]}


@dataclass(frozen=True)
class Fault:
    """A fault active on samples [start, end).

    kind: "drift" (sensor offset ramping to `magnitude` over `ramp` samples, in the signal's unit),
    "spike" (an outlier of `magnitude` every 50 samples), "stuck" (the reading freezes), "dropout"
    (no reading), "fouling" (heat-transfer coefficient loses up to `magnitude` as a fraction, process
    fault) or "leak" (cold-side outlet pressure loses up to `magnitude` bar, process fault).
    `signal` names the target sensor for sensor faults; process faults pick their own signals.
    """

    kind: str
    start: int
    end: int
    signal: str | None = None
    magnitude: float = 0.0
    ramp: int = 20

    def expected_alerts(self) -> list[tuple[str, str]]:
        """(signal, alert kind) pairs a monitor should raise for this fault."""
        signals = PROCESS_FAULT_SIGNALS.get(self.kind, [self.signal])
        return [(s, FAULT_KINDS[self.kind]) for s in signals]

    def profile(self, samples: int) -> np.ndarray:
        """0..1 fault strength per sample: ramps up from `start`, holds until `end`, then 0."""
        out = np.zeros(samples)
        idx = np.arange(self.start, min(self.end, samples))
        out[idx] = np.minimum(1.0, (idx - self.start + 1) / max(1, self.ramp))
        return out


@dataclass
class PlantData:
    """One simulated run: boundary inputs, target sensors (NaN where a reading is missing), timestamps."""

    timestamps: list[str]
    boundary: np.ndarray  # [n, len(BOUNDARY_SIGNALS)]
    target: np.ndarray  # [n, len(TARGET_SIGNALS)]
    faults: tuple[Fault, ...] = ()


def _ornstein_uhlenbeck(rng: np.random.Generator, n: int, mean: float, std: float, tau: float) -> np.ndarray:
    """Stationary OU process with the given mean, standard deviation and correlation time."""
    a = np.exp(-1.0 / tau)
    shocks = rng.normal(0.0, std * np.sqrt(1.0 - a * a), n)
    out = np.empty(n)
    level = mean + rng.normal(0.0, std)
    for i in range(n):
        level = mean + a * (level - mean) + shocks[i]
        out[i] = level
    return out


def steady_state(boundary: np.ndarray, fouling: np.ndarray | float = 0.0, leak: np.ndarray | float = 0.0) -> np.ndarray:
    """Noise-free steady-state target values for boundary rows [n, 9] (column order BOUNDARY_SIGNALS).

    `fouling` is the fraction of heat-transfer coefficient lost, `leak` the cold-side pressure lost (bar).
    """
    t_hot, t_cold, t_amb, m_hot, m_cold, p_hot, p_cold, bypass, speed = boundary.T
    speed_ratio = speed / 1450.0
    m_hot_eff = m_hot * speed_ratio  # the pump drives the hot loop
    m_cold_hx = m_cold * (1.0 - bypass)  # part of the cold flow bypasses the exchanger
    c_hot = m_hot_eff * _CP_WATER
    c_cold = m_cold_hx * _CP_WATER
    c_min, c_max = np.minimum(c_hot, c_cold), np.maximum(c_hot, c_cold)
    ua = 6.0 * (m_hot_eff**0.8 * m_cold_hx**0.8) / (m_hot_eff**0.8 + m_cold_hx**0.8) * (1.0 - fouling)
    ntu = ua / c_min
    cr = c_min / c_max
    e = np.exp(-ntu * (1.0 - cr))
    effectiveness = (1.0 - e) / (1.0 - cr * e)
    duty = effectiveness * c_min * (t_hot - t_cold)  # kW
    heat_loss = 0.08 * (t_hot - t_amb)  # shell loss to ambient, kW
    t_hot_out = t_hot - (duty + heat_loss) / c_hot
    t_cold_hx_out = t_cold + duty / c_cold
    t_cold_out = bypass * t_cold + (1.0 - bypass) * t_cold_hx_out
    p_hot_out = p_hot - 0.18 * m_hot_eff**2
    p_cold_out = p_cold - 0.07 * m_cold_hx**2 - 0.02 * (m_cold * bypass) ** 2 - leak
    pump_power = 1.6 * speed_ratio**3 + 0.05 * m_hot_eff * (p_hot - p_hot_out) * 10.0
    return np.stack([t_hot_out, t_cold_out, duty, p_hot_out, p_cold_out, pump_power], axis=1)


def simulate(samples: int, seed: int = 0, start: datetime | None = None, period_s: float = 1.0,
             faults: tuple[Fault, ...] = (), excitation: float = 1.0, boundary: np.ndarray | None = None) -> PlantData:
    """Simulate `samples` one-second steps of the plant; the same seed gives the same run (faults aside).

    `excitation` > 1 makes an identification run for training a twin: every boundary signal wanders
    `excitation` times wider and faster than in normal operation, so the twin also learns the edges of
    the operating range that normal operation visits only rarely. `boundary` [samples, 9] runs the plant
    on these inputs instead (an operating program, an input moved by hand); the seed still draws the
    wandering ones first, so the sensor noise is that of the same seed's run.
    """
    if excitation <= 0:
        raise ValueError("excitation must be positive")
    rng = np.random.default_rng(seed)
    columns = []
    for name in BOUNDARY_SIGNALS:
        mean, std, tau = _BOUNDARY_PROCESS[name]
        columns.append(_ornstein_uhlenbeck(rng, samples, mean, std * excitation, tau / excitation))
    wandering = np.stack(columns, axis=1)
    wandering[:, 3:5] = np.clip(wandering[:, 3:5], 0.8, None)  # flows stay positive
    wandering[:, 7] = np.clip(wandering[:, 7], 0.0, 0.8)  # valve travel limits
    if boundary is not None and np.shape(boundary) != wandering.shape:
        raise ValueError(f"boundary must be [{samples}, {len(BOUNDARY_SIGNALS)}]")
    boundary = wandering if boundary is None else np.array(boundary, dtype=np.float64)
    process = {k: sum((f.profile(samples) * f.magnitude for f in faults if f.kind == k), np.zeros(samples))
               for k in ("fouling", "leak")}
    ideal = steady_state(boundary, process["fouling"], process["leak"])
    # first-order lag: each target approaches its steady state with its own time constant
    alpha = 1.0 / LAG_SAMPLES
    lagged = np.empty_like(ideal)
    state = ideal[0].copy()
    for i in range(samples):
        state += alpha * (ideal[i] - state)
        lagged[i] = state
    target = lagged + rng.normal(0.0, 1.0, lagged.shape) * _SENSOR_NOISE
    for fault in faults:
        _apply_sensor_fault(target, fault)
    start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    timestamps = [(start + timedelta(seconds=i * period_s)).isoformat() for i in range(samples)]
    return PlantData(timestamps, boundary, target, tuple(faults))


def _apply_sensor_fault(target: np.ndarray, fault: Fault) -> None:
    if fault.kind in PROCESS_FAULT_SIGNALS:
        return
    if fault.kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    j = TARGET_SIGNALS.index(fault.signal)
    span = slice(fault.start, min(fault.end, len(target)))
    if fault.kind == "drift":
        target[:, j] += fault.profile(len(target)) * fault.magnitude
    elif fault.kind == "spike":
        target[fault.start:fault.end:50, j] += fault.magnitude
    elif fault.kind == "stuck":
        target[span, j] = target[fault.start, j]
    elif fault.kind == "dropout":
        target[span, j] = np.nan


def write_csv(data: PlantData, path: Path) -> None:
    """Write a run as CSV: timestamp, boundary signals, target signals."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *BOUNDARY_SIGNALS, *TARGET_SIGNALS])
        for ts, b, t in zip(data.timestamps, data.boundary, data.target):
            writer.writerow([ts, *(f"{v:.6g}" for v in b), *(f"{v:.6g}" for v in t)])


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate demo heat-exchanger plant data as CSV.")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--excitation", type=float, default=1.0,
                        help="boundary signals wander this many times wider and faster (training data for a twin)")
    parser.add_argument("--out", type=Path, default=Path("data/demo/plant.csv"))
    args = parser.parse_args()
    write_csv(simulate(args.samples, args.seed, excitation=args.excitation), args.out)
    print(f"wrote {args.samples} samples to {args.out}")


if __name__ == "__main__":
    main()
