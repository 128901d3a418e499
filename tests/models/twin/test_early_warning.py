"""Early warning from a modest history: a twin trained and calibrated on 300 rows (out of fold), a twin
of target signals only, the multivariate alert, sample-and-hold signals and alarm-flood protection."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
import torch

from models.twin.dataset import SignalTable
from models.twin.ensemble import Ensemble
from models.twin.graph import load_graph
from models.twin.monitor.calibrate import calibrate
from models.twin.monitor.events import AlertEvent
from models.twin.monitor.flood import AlarmFlood, FloodLimits
from models.twin.monitor.residual_monitor import ResidualMonitor
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from tests.support.paths import SKAB_FIXTURES
from tests.support.ridge import ridge_out_of_fold_r2

SKAB_SIGNALS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
                "Voltage", "Volume Flow RateRMS"]



def skab_normal_rows(rows: int) -> np.ndarray:
    """The first rows of SKAB's anomaly-free run (a real water-circulation testbed at 1 Hz)."""
    from bench.skab import Run
    return Run.read(SKAB_FIXTURES / "anomaly-free-head.csv").values[:rows]


def skab_fault_run():
    """SKAB's valve1/0 run: (values [n, 8], timestamps, fault label per row)."""
    from bench.skab import Run
    return Run.read(SKAB_FIXTURES / "valve1-0.csv")


def timestamps(n: int) -> list[str]:
    start = datetime(2026, 1, 1)
    return [(start + timedelta(seconds=i)).isoformat() for i in range(n)]


PLANT_RUN = simulate(1800, seed=31)  # 30 minutes of the demo plant: 5 to train on, 25 to watch


@pytest.fixture(scope="module")
def plant_twin_300(tmp_path_factory) -> Ensemble:
    data = PLANT_RUN
    folder = train_ensemble_quietly(SignalTable(data.boundary[:300], data.target[:300], None), BOUNDARY_SIGNALS,
                                    TARGET_SIGNALS, tmp_path_factory.mktemp("repo"), "Modest", epochs=20,
                                    boost_epochs=10)
    return Ensemble(folder)


@pytest.fixture(scope="module")
def targets_only_twin(tmp_path_factory) -> Ensemble:
    values = skab_normal_rows(400)
    folder = train_ensemble_quietly(SignalTable(np.empty((400, 0)), values, None), [], SKAB_SIGNALS,
                                    tmp_path_factory.mktemp("repo"), "Testbed", epochs=20, boost_epochs=10)
    return Ensemble(folder)


@pytest.fixture(scope="module")
def fault_run_twin(tmp_path_factory) -> Ensemble:
    """A twin of SKAB valve1/0 trained on the run's own first 400 rows (the benchmark's protocol)."""
    values = skab_fault_run().values[:400]
    folder = train_ensemble_quietly(SignalTable(np.empty((400, 0)), values, None), [], SKAB_SIGNALS,
                                    tmp_path_factory.mktemp("repo"), "Valve", epochs=20, boost_epochs=10)
    return Ensemble(folder)


@pytest.fixture(scope="module")
def linear_plant_twin(tmp_path_factory) -> tuple[np.ndarray, Ensemble]:
    """A twin of six signals only: five mix two slow drivers linearly (plus noise), one is unrelated."""
    rng = np.random.default_rng(5)
    drivers = np.cumsum(rng.normal(size=(500, 2)), axis=0)
    values = drivers @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(500, 6))
    values[:, 5] = rng.normal(size=500)
    names = [f"signal_{i}" for i in range(6)]
    folder = train_ensemble_quietly(SignalTable(np.empty((500, 0)), values, None), [], names,
                                    tmp_path_factory.mktemp("repo"), "Linear", epochs=5, boost_epochs=3)
    return values, Ensemble(folder)


def train_ensemble_quietly(*args, **kwargs):
    from models.twin.train import train_ensemble
    return train_ensemble(*args, **kwargs)


def test_three_hundred_rows_train_and_calibrate_out_of_fold(plant_twin_300):
    m = plant_twin_300.manifest
    assert m.training["rows"] == 300 and m.training["calibration"] == {"scheme": "cross-fit", "folds": 5, "rows": 300}
    assert m.training["d_model"] == 32 and m.training["num_layers"] == 1  # sized for 300 rows
    assert m.monitor.validation_samples == 300  # every row predicted by a twin that did not train on it
    for metrics in m.metrics.values():
        assert metrics.test_r2_stage1 is None  # no separate test split: out-of-fold R² of each stage instead
        assert np.isfinite(metrics.r2_stage1) and np.isfinite(metrics.r2_ensemble)
    # Stage 1 is not useless on 300 rows: every demo-plant target well predicted on rows it never saw
    assert min(x.r2_stage1 for x in m.metrics.values()) > 0.75, {t: x.r2_stage1 for t, x in m.metrics.items()}
    # 5 minutes of a slow plant hold too few independent samples to estimate the residuals' covariance:
    # no multivariate alert rather than one that would fire on the next operating point
    assert m.monitor.multivariate is None


def test_a_modest_twin_stays_quiet_on_the_rest_of_the_normal_run(plant_twin_300):
    data = PLANT_RUN
    monitor = ResidualMonitor(TARGET_SIGNALS, plant_twin_300.manifest.monitor)
    events = monitor.update(plant_twin_300.predict(data.boundary[300:]), data.target[300:], data.timestamps[300:])
    opened = [e for e in events if e.opened]
    assert len(opened) <= 2, [(e.signal, e.kind, e.sample) for e in opened]  # 25 min: about 1 per 10 min


def test_on_a_real_fault_run_alerts_open_in_the_fault_and_not_in_the_normal_rows_around_it(fault_run_twin):
    """SKAB valve1/0 (a valve closed for 400 s) streamed as bench.skab streams it: the 400 calibration
    samples set the drift EWMA's memory short and the thresholds wide enough for 400 s of history."""
    from bench.skab import flagged_rows
    run = skab_fault_run()
    calibration = fault_run_twin.manifest.monitor
    assert calibration.thresholds["Current"].drift_lambda == pytest.approx(0.2)
    assert calibration.thresholds["Current"].clear_samples == 15
    # a twin that explains less than half a sensor's variance out of fold is not followed (SKAB's sensors
    # say little about each other at 1 Hz): those readings are watched against their normal level
    skill = {t: fault_run_twin.manifest.metrics[t].r2_ensemble for t in SKAB_SIGNALS}
    assert all(calibration.signals[t].follows_twin for t in SKAB_SIGNALS if skill[t] > 0.6), skill
    assert not any(calibration.signals[t].follows_twin for t in SKAB_SIGNALS if skill[t] < 0.4), skill
    assert not calibration.signals["Thermocouple"].follows_twin
    monitor = ResidualMonitor(SKAB_SIGNALS, calibration, flood=AlarmFlood())
    fault = np.flatnonzero(run.anomaly)
    row = {ts: i for i, ts in enumerate(run.timestamps)}
    changes = []
    for start in range(0, len(run.anomaly), 100):
        part = slice(start, start + 100)
        for e in monitor.update(fault_run_twin.predict(run.values[part]), run.values[part], run.timestamps[part]):
            changes.append((row[e.sample], (e.signal, e.kind), e.opened))
    flagged = flagged_rows(len(run.anomaly), changes)
    opened = [(at, *key) for at, key, is_opening in changes if is_opening]
    assert not [a for a in opened if 400 <= a[0] < fault[0]], opened  # quiet before the fault
    assert any(fault[0] <= a[0] < fault[0] + 60 for a in opened), opened  # the fault caught within a minute
    assert flagged[fault[0] + 5:fault[0] + 65].all()  # and kept open through its first minute
    after = np.arange(fault[-1] + 1, len(flagged))
    assert flagged[after].mean() < 0.25, opened  # and the alerts end with it


def test_a_modest_twin_stays_quiet_on_a_separate_normal_run_of_the_plant(plant_twin_300):
    """What a plant engineer does next: stream another day of normal operation, with its own disturbances."""
    data = simulate(2000, seed=32)
    monitor = ResidualMonitor(TARGET_SIGNALS, plant_twin_300.manifest.monitor, flood=AlarmFlood())
    events = monitor.update(plant_twin_300.predict(data.boundary), data.target, data.timestamps)
    opened = [(e.signal, e.kind, e.sample) for e in events if e.opened]
    assert len(opened) <= 1 and not monitor.open_alerts, opened  # 33 minutes: under 1 per 10 min, none standing


def test_a_twin_of_target_signals_only_predicts_each_from_the_others(targets_only_twin):
    m = targets_only_twin.manifest
    assert m.boundary_signals == [] and m.leave_one_out and m.sensor_lag == {}
    rows = skab_normal_rows(450)[400:]
    predicted = targets_only_twin.predict(rows)
    assert predicted.shape == rows.shape and np.isfinite(predicted).all()
    # a target's own reading never reaches its prediction; the others' readings do
    changed = rows.copy()
    changed[:, 0] += 10 * rows[:, 0].std() + 1.0
    after = targets_only_twin.predict(changed)
    np.testing.assert_allclose(after[:, 0], predicted[:, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(after[:, 1:] - predicted[:, 1:]).max() > 1e-4
    # a missing reading (NaN) is hidden like the target's own one
    gaps = rows.copy()
    gaps[:, 3] = np.nan
    assert np.isfinite(targets_only_twin.predict(gaps)).all()


def test_a_twin_of_target_signals_only_is_as_good_as_ridge_on_the_others_and_followed(linear_plant_twin):
    values, twin = linear_plant_twin
    m = twin.manifest
    ridge = ridge_out_of_fold_r2(values)  # the same five time-ordered folds the twin is calibrated on
    ours = np.array([m.metrics[t].r2_ensemble for t in m.target_signals])
    assert (ours >= ridge - 0.02).all(), (ours, ridge)
    assert [m.monitor.signals[t].follows_twin for t in m.target_signals] == [True] * 5 + [False]
    rows = values[:100]
    rows_gap = rows.copy()
    rows_gap[:, 0] = np.nan  # a missing reading still gives every other target a prediction
    assert np.isfinite(twin.predict(rows_gap)).all()
    graph = load_graph(twin.folder, m)
    scaled = twin.boundary_scaler.transform(rows)
    with torch.inference_mode():
        torch_stage1, _ = (t.numpy() for t in graph(torch.from_numpy(scaled).float()))
    assert np.abs(twin.run_scaled(scaled)[0] - torch_stage1).max() < 1e-4  # ONNX serves the same choice


def test_a_twin_of_target_signals_only_exports_what_pytorch_computes(targets_only_twin):
    graph = load_graph(targets_only_twin.folder, targets_only_twin.manifest)
    rows = skab_normal_rows(64)
    rows[5, 2] = np.nan
    scaled = targets_only_twin.boundary_scaler.transform(rows)
    onnx_stage1, onnx_residual = targets_only_twin.run_scaled(scaled)
    with torch.inference_mode():
        torch_stage1, torch_residual = (t.numpy() for t in graph(torch.from_numpy(scaled).float()))
    assert np.abs(onnx_stage1 - torch_stage1).max() < 1e-4 and np.abs(onnx_residual - torch_residual).max() < 1e-4


def correlated_run(n: int, seed: int, shift: np.ndarray | None = None, start: int = 0):
    """Three targets whose residuals move together (a shared factor), optionally shifted from `start`,
    and a fourth whose residual wanders (a random walk)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 1))
    residual = 0.97 * shared + np.sqrt(1 - 0.97 ** 2) * rng.normal(size=(n, 3))
    if shift is not None:
        residual[start:] += shift
    wandering = np.cumsum(rng.normal(size=(n, 1)) * 0.05, axis=0)
    predictions = rng.normal(size=(n, 4)) * 5
    return predictions, predictions + np.hstack([residual, wandering])


def test_the_multivariate_alert_catches_a_shift_no_single_signal_alarms_on():
    names = ["a", "b", "c", "wanders"]
    predictions, actual = correlated_run(3_000, seed=1)
    calibration = calibrate(names, predictions, actual, lags=np.zeros(4))
    calibration.baseline_halflife = None
    # a residual that wanders through the calibration run has no covariance to speak of: left out of T²
    assert calibration.multivariate.signals == ["a", "b", "c"]
    # against the shared factor: each residual moves by less than its own drift threshold, together they
    # leave the normal (correlated) cloud
    shift = np.array([0.2, -0.2, 0.0])
    predictions, actual = correlated_run(3000, seed=2, shift=shift, start=1000)
    events = ResidualMonitor(names, calibration).update(predictions, actual, timestamps(3000))
    opened = [e for e in events if e.opened]
    assert [(e.signal, e.kind) for e in opened] == [("*", "multivariate")], [
        (e.signal, e.kind, e.sample) for e in opened
    ]
    alert = opened[0]
    assert alert.sample >= timestamps(3000)[1000] and set(alert.contributors[:2]) == {"a", "b"}
    assert "most from" in alert.message and alert.score > alert.threshold
    # and on normal data of the same process it stays quiet
    predictions, actual = correlated_run(10_000, seed=3)
    assert ResidualMonitor(names, calibration).update(predictions, actual, timestamps(10_000)) == []


def test_sample_and_hold_signals_are_not_stuck_but_a_frozen_one_is():
    rng = np.random.default_rng(4)
    n = 3000
    predictions = np.cumsum(rng.normal(size=(n, 2)) * 0.05, axis=0)
    actual = predictions + rng.normal(size=(n, 2)) * 0.05
    analyser = np.repeat(actual[::6, 1], 6)[:n]  # an analyser: a new value every 6 samples, held between
    actual[:, 1] = analyser
    calibration = calibrate(["flow", "analyser"], predictions[:2000], actual[:2000], lags=np.zeros(2))
    assert calibration.signals["analyser"].hold_samples == 6 and calibration.signals["flow"].hold_samples == 1
    assert calibration.thresholds["analyser"].stuck_samples > 6
    monitor = ResidualMonitor(["flow", "analyser"], calibration)
    assert [e.kind for e in monitor.update(predictions[2000:], actual[2000:], timestamps(n)[2000:])
            if e.opened and e.kind == "stuck"] == []
    frozen = actual[2000:].copy()
    frozen[300:, 1] = frozen[300, 1]  # the analyser stops updating
    events = ResidualMonitor(["flow", "analyser"], calibration).update(predictions[2000:], frozen, timestamps(n)[2000:])
    assert ("analyser", "stuck") in [(e.signal, e.kind) for e in events if e.opened]


def alert(i: int, opened: bool = True) -> AlertEvent:
    return AlertEvent("drift", f"s{i}", opened, 5.0, 1.0, "", "", [f"s{i}"])


def test_an_alarm_flood_is_summarised_and_held_back():
    flood = AlarmFlood(FloodLimits(max_alerts=3, window_s=600))
    start = datetime(2026, 1, 1)
    at = lambda seconds: (start + timedelta(seconds=seconds)).isoformat()  # noqa: E731
    passed = [e for i in range(8) for e in flood.filter([alert(i)], at(10 * i))]
    assert [(e.signal, e.kind) for e in passed] == [("s0", "drift"), ("s1", "drift"), ("s2", "drift"), ("*", "flood")]
    assert passed[-1].opened and passed[-1].contributors == ["s3"] and "held back" in passed[-1].message
    assert flood.filter([alert(5, opened=False)], at(90)) == []  # the operator never saw s5 open
    assert [e.signal for e in flood.filter([alert(0, opened=False)], at(95))] == ["s0"]
    # ten minutes after the burst, the window empties and the flood clears with its count
    over = flood.filter([], at(700))
    assert [(e.kind, e.opened) for e in over] == [("flood", False)] and over[0].score == 5
    assert set(over[0].contributors) == {"s3", "s4", "s5", "s6", "s7"}
    assert [e.signal for e in flood.filter([alert(9)], at(710))] == ["s9"]  # alerts pass again
