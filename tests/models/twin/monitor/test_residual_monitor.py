"""The residual monitor on the committed demo ensemble: silent on normal plant data, the right alert for
each injected fault, cleared after it; calibration recovers the plant's sensor lags."""

from __future__ import annotations

import numpy as np
import pytest

from models.twin.ensemble import Ensemble
from models.twin.monitor.calibrate import calibrate, drift_weight, held_out_ewma
from models.twin.monitor.calibration import AlertThresholds
from models.twin.monitor.residual_monitor import ResidualMonitor, _scan, compile_monitor
from models.twin.plant import BOUNDARY_SIGNALS, LAG_SAMPLES, TARGET_SIGNALS, Fault, simulate, steady_state
from models.twin.sensor_lag import first_order_lag

FAULT_START, FAULT_END, RUN = 1000, 1600, 2600


@pytest.fixture(scope="module")
def ensemble(demo_repository, demo_ensemble_name) -> Ensemble:
    ensemble = Ensemble(demo_repository.path(demo_ensemble_name))
    assert ensemble.manifest.monitor is not None, "the demo ensemble ships a monitor calibration"
    return ensemble


def monitor_run(ensemble: Ensemble, faults: tuple[Fault, ...], samples: int, seed: int, **overrides):
    data = simulate(samples, seed=seed, faults=faults)
    calibration = ensemble.manifest.monitor
    thresholds = {t: AlertThresholds.model_validate({**calibration.thresholds[t].model_dump(), **overrides})
                  for t in TARGET_SIGNALS} if overrides else None
    monitor = ResidualMonitor(TARGET_SIGNALS, calibration, thresholds, boundary=BOUNDARY_SIGNALS)
    events = monitor.update(ensemble.predict(data.boundary), data.target, data.timestamps, data.boundary)
    return data, monitor, events


def test_no_alert_on_ten_thousand_normal_samples(ensemble):
    _, monitor, events = monitor_run(ensemble, (), 10_000, seed=4242)
    assert monitor.inputs == BOUNDARY_SIGNALS  # every input is watched against its training range
    assert events == [] and monitor.open_alerts == []


def test_an_input_beyond_the_training_range_raises_envelope_and_clears_when_back(ensemble):
    data = simulate(RUN, seed=31)
    speed = BOUNDARY_SIGNALS.index("Speed_boundary_1")
    boundary = data.boundary.copy()
    boundary[FAULT_START:FAULT_END, speed] = 3_000.0  # rpm; the identification run reached 2,366
    monitor = ResidualMonitor(TARGET_SIGNALS, ensemble.manifest.monitor, boundary=BOUNDARY_SIGNALS)
    events = monitor.update(ensemble.predict(boundary), data.target, data.timestamps, boundary)
    envelope = [e for e in events if e.kind == "envelope"]
    assert [(e.signal, e.opened) for e in envelope] == [("Speed_boundary_1", True), ("Speed_boundary_1", False)]
    opened, cleared = envelope
    assert opened.first_sample == data.timestamps[FAULT_START] and opened.sample == data.timestamps[FAULT_START + 2]
    assert opened.score > opened.threshold and "extrapolate" in opened.message
    assert FAULT_END <= data.timestamps.index(cleared.sample) <= FAULT_END + 100


@pytest.mark.parametrize("fault", [
    Fault("drift", FAULT_START, FAULT_END, "Temperature_target_2", magnitude=6.0),
    Fault("spike", FAULT_START, FAULT_END, "Pressure_target_1", magnitude=0.8),
    Fault("stuck", FAULT_START, FAULT_END, "Temperature_target_1"),
    Fault("dropout", FAULT_START, FAULT_END, "Power_target_2"),
    Fault("fouling", FAULT_START, FAULT_END, magnitude=0.35),
    Fault("leak", FAULT_START, FAULT_END, magnitude=0.1),
], ids=lambda f: f.kind)
def test_each_fault_raises_its_alert_and_clears_after(ensemble, fault):
    data, monitor, events = monitor_run(ensemble, (fault,), RUN, seed=777)
    opened = [(e.signal, e.kind) for e in events if e.opened]
    assert set(opened) == set(fault.expected_alerts()), [(e.signal, e.kind, e.sample) for e in events]
    assert len(opened) == len(set(opened)), "hysteresis: each alert opens once"
    first = {(e.signal, e.kind): data.timestamps.index(e.sample) for e in events if e.opened}
    assert all(FAULT_START <= i < FAULT_END for i in first.values()), first
    cleared = {(e.signal, e.kind) for e in events if not e.opened}
    assert cleared == set(opened) and monitor.open_alerts == []
    assert all(data.timestamps.index(e.sample) >= FAULT_END for e in events if not e.opened)


@pytest.mark.parametrize("signal", ["Temperature_target_2", "Pressure_target_2"])
def test_a_drift_of_one_residual_standard_deviation_is_caught(ensemble, signal):
    size = ensemble.manifest.monitor.signals[signal].residual_std
    data, monitor, events = monitor_run(ensemble, (Fault("drift", FAULT_START, FAULT_END, signal, size),), RUN, seed=31)
    opened = [(e.signal, e.kind, data.timestamps.index(e.sample)) for e in events if e.opened]
    assert [(s, k) for s, k, _ in opened] == [(signal, "drift")], opened
    assert FAULT_START < opened[0][2] < FAULT_END
    assert monitor.open_alerts == []  # cleared after the drift ended


def test_every_monitor_runs_on_what_the_server_compiles_before_it_serves(ensemble):
    """A signature compiled on a session's first samples holds the replica's GIL for seconds: read-only
    arrays (as Ray hands them over), other dtypes and layouts, and calibrations with or without input
    ranges, levels or boundary readings all run on the loop compile_monitor compiled."""
    compile_monitor()
    compiled = set(_scan.signatures)
    data = simulate(300, seed=5)
    predictions, actual = ensemble.predict(data.boundary), data.target.copy()
    predictions.flags.writeable = actual.flags.writeable = False
    calibration = ensemble.manifest.monitor
    variants = [calibration, calibration.model_copy(update={"input_levels": {}}),
                calibration.model_copy(update={"inputs": {}}),
                calibration.model_copy(update={"inputs": {}, "input_levels": {}, "multivariate": None})]
    for variant in variants:
        ResidualMonitor(TARGET_SIGNALS, variant, boundary=BOUNDARY_SIGNALS).update(
            predictions, actual, data.timestamps, data.boundary.astype(np.float32))
        ResidualMonitor(TARGET_SIGNALS, variant).update(np.asfortranarray(predictions), actual.astype(np.float32),
                                                        data.timestamps)
    assert set(_scan.signatures) == compiled and len(compiled) == 4


def test_alert_names_where_the_condition_began(ensemble):
    fault = Fault("stuck", FAULT_START, FAULT_END, "Temperature_target_1")
    data, _, events = monitor_run(ensemble, (fault,), RUN, seed=5)
    stuck = next(e for e in events if e.opened)
    assert stuck.first_sample == data.timestamps[FAULT_START]
    assert stuck.sample == data.timestamps[FAULT_START + int(stuck.threshold)]
    assert "Temperature_target_1" in stuck.message


def test_session_thresholds_override_the_calibration(ensemble):
    fault = Fault("dropout", FAULT_START, FAULT_START + 20, "Power_target_2")
    _, _, default = monitor_run(ensemble, (fault,), 1200, seed=9)
    _, _, patient = monitor_run(ensemble, (fault,), 1200, seed=9, missing_samples=50)
    assert [(e.kind, e.opened) for e in default] == [("missing", True), ("missing", False)]
    assert patient == []


def test_calibration_recovers_the_plant_sensor_lags():
    data = simulate(6000, seed=31)
    truth = data.target.copy()
    # a perfect steady-state twin: the plant's physics without lag or noise
    calibration = calibrate(TARGET_SIGNALS, steady_state(data.boundary), truth)
    expected = 1.0 - 1.0 / LAG_SAMPLES
    fitted = np.array([calibration.signals[t].lag for t in TARGET_SIGNALS])
    assert np.abs(fitted - expected).max() <= 0.05, fitted
    lagged = first_order_lag(steady_state(data.boundary), fitted)
    assert np.allclose([calibration.signals[t].residual_std for t in TARGET_SIGNALS], (truth - lagged).std(axis=0))


def test_calibration_refuses_too_little_data():
    data = simulate(50, seed=1)
    with pytest.raises(ValueError, match="too few"):
        calibrate(TARGET_SIGNALS, data.target, data.target)


def _noise_run(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, measured) of two signals: white noise of 1 sd around a flat twin."""
    return np.zeros((n, 2)), rng.normal(0.0, 1.0, (n, 2))


def test_drift_is_calibrated_on_each_time_block_against_the_other_blocks():
    rng = np.random.default_rng(8)
    residual = rng.normal(0.0, 0.1, (2000, 1))
    residual[800:1200] += 2.0  # the plant held another level for the middle fifth of its normal run
    smoothed = held_out_ewma(residual, 0.05)
    others = np.delete(residual, np.s_[800:1200], axis=0)
    expected = (2.0 - others.mean()) / others.std()  # ~20 sd of the other blocks: what live monitoring sees
    assert smoothed[1199, 0] == pytest.approx(expected, rel=0.05)
    assert np.abs(smoothed[:800]).max() < 0.3 * expected  # the other blocks against a mean that includes it
    # so the threshold is wider than the run's overall spread would make it
    calibration = calibrate(["a"], np.zeros_like(residual), residual, lags=np.zeros(1))
    assert calibration.thresholds["a"].drift_threshold > expected > 2.0 / calibration.signals["a"].residual_std


def test_the_drift_ewma_memory_is_short_against_a_short_calibration_run():
    # 16 memories in each of the 5 calibration blocks, within SPC's usual weights 0.05-0.25
    assert [drift_weight(n) for n in (100, 300, 400, 800, 1600, 300_000)] == pytest.approx(
        [0.25, 0.25, 0.2, 0.1, 0.05, 0.05]
    )


def test_a_twin_is_followed_only_where_it_explains_most_of_a_reading():
    rng = np.random.default_rng(10)
    driver = rng.normal(size=(3000, 1))
    predictions = np.hstack([driver, driver, np.zeros_like(driver)])
    actual = np.hstack([driver + 0.3 * rng.normal(size=driver.shape),  # R² ~0.9
                        driver + 1.5 * rng.normal(size=driver.shape),  # R² ~0.3
                        rng.normal(size=driver.shape)])  # nothing to predict
    names = ["good", "weak", "none"]
    calibration = calibrate(names, predictions[:2000], actual[:2000], lags=np.zeros(3))
    assert [calibration.signals[t].follows_twin for t in names] == [True, False, False]
    assert calibration.signals["weak"].residual_std == pytest.approx(actual[:2000, 1].std(), rel=1e-6)
    # the weak twin extrapolating wildly raises nothing; the reading itself leaving its level does
    wild = predictions[2000:].copy()
    wild[:, 1] += 50.0
    stamps = [str(i) for i in range(1000)]
    assert ResidualMonitor(names, calibration).update(wild, actual[2000:], stamps) == []
    shifted = actual[2000:].copy()
    shifted[500:, 1] += 3 * actual[:2000, 1].std()
    events = ResidualMonitor(names, calibration).update(predictions[2000:], shifted, stamps)
    assert [(e.signal, e.kind) for e in events if e.opened][:1] == [("weak", "drift")]


def test_an_alert_clears_three_ewma_memories_after_the_plant_recovers():
    rng = np.random.default_rng(9)
    calibration = calibrate(["a", "b"], *_noise_run(rng, 2000), lags=np.zeros(2))
    threshold = calibration.thresholds["a"]
    assert threshold.clear_samples == round(3 / threshold.drift_lambda) == 60
    predictions, measured = _noise_run(rng, 1000)
    measured[300:500, 0] += 10.0  # a 10 sd fault on `a` for 200 samples
    monitor = ResidualMonitor(["a", "b"], calibration)
    events = monitor.update(predictions, measured, [str(i) for i in range(1000)])
    drift = [(int(e.sample), e.opened) for e in events if e.kind == "drift"]
    assert [opened for _, opened in drift] == [True, False] and 300 <= drift[0][0] < 310
    # the EWMA falls under half the threshold within ~2 memories of the fault's end, then 60 calm samples
    assert 500 + threshold.clear_samples < drift[1][0] < 500 + 4 / threshold.drift_lambda + threshold.clear_samples
