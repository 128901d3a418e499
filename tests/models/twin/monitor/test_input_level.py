"""`input_level`: boundary inputs against their normal level, calibrated on normal operation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.twin.monitor.calibrate import MIN_CALIBRATION_SAMPLES, input_levels
from models.twin.monitor.calibration import AlertThresholds, InputRange, MonitorCalibration, SignalCalibration
from models.twin.monitor.recalibration import rebaselined
from models.twin.monitor.residual_monitor import ResidualMonitor
from tests.support.input_series import three_inputs, wandering

BOUNDARY = ["v", "u", "w"]  # v: a range only; u: range and level; w: a level only


@pytest.fixture(scope="module")
def calibration() -> MonitorCalibration:
    normal = three_inputs(4000, 0)
    levels = input_levels(BOUNDARY, normal)
    signal = SignalCalibration(lag=0.0, residual_mean=0.0, residual_std=1.0, step_std=1.0)
    return MonitorCalibration(
        signals={"y": signal}, thresholds={"y": AlertThresholds(drift_threshold=100.0, spike_threshold=100.0)},
        validation_samples=4000, threshold_margin=1.1,
        inputs={b: InputRange(low=-1e3, high=1e3) for b in ("v", "u")},
        input_levels={b: levels[b] for b in ("u", "w")})


def feed(monitor: ResidualMonitor, inputs: np.ndarray, start: int = 0) -> list:
    n = len(inputs)
    y = np.random.default_rng(start).normal(size=(n, 1))
    return monitor.update(np.zeros((n, 1)), y, [str(start + i) for i in range(n)], inputs)


def test_levels_are_the_normal_data_s_with_a_limit_in_spreads():
    short = np.r_[wandering(MIN_CALIBRATION_SAMPLES - 1, 2), np.full(4001 - MIN_CALIBRATION_SAMPLES, np.nan)]
    normal = np.column_stack([wandering(4000, 1, mean=50.0, sd=2.0), np.full(4000, 3.0), short, wandering(4000, 3)])
    normal[::7, 0] = np.nan  # missing readings are left out
    levels = input_levels(["a", "constant", "short", "b"], normal)
    assert set(levels) == {"a", "b"}  # a constant input or one with < MIN_CALIBRATION_SAMPLES readings: none
    a = levels["a"]
    assert a.mean == pytest.approx(50.0, abs=1.0) and a.std == pytest.approx(2.0, rel=0.2)
    # an EWMA of a wandering input reaches its spread now and then: the limit is a few spreads, not a fraction
    assert 1.5 < a.drift_threshold < 8.0 and 0.05 <= a.drift_lambda <= 0.25 and a.clear_samples >= 1


def test_normal_operation_raises_nothing_a_level_shift_inside_the_range_does(calibration):
    monitor = ResidualMonitor(["y"], calibration, boundary=BOUNDARY)
    assert monitor.inputs == BOUNDARY
    calm = three_inputs(20_000, 10)
    assert feed(monitor, calm) == []  # 20,000 unseen normal samples
    w = calibration.input_levels["w"]
    shifted = three_inputs(300, 20)
    shifted[:, 2] += 2 * w.drift_threshold * w.std  # w settles two limits higher, well inside any range
    events = feed(monitor, shifted, start=20_000)
    assert [(e.kind, e.signal, e.opened) for e in events] == [("input_level", "w", True)]
    assert events[0].score > events[0].threshold == pytest.approx(w.drift_threshold)
    assert monitor.open_alerts == [("w", "input_level")]
    back = three_inputs(600, 30)
    cleared = feed(monitor, back, start=20_300)
    assert [(e.kind, e.signal, e.opened) for e in cleared] == [("input_level", "w", False)]


def test_a_missing_reading_holds_the_level_and_an_open_alert_survives_a_restore(calibration):
    first = ResidualMonitor(["y"], calibration, boundary=BOUNDARY)
    u = calibration.input_levels["u"]
    high = np.tile([10.0, 20.0 + 3 * u.drift_threshold * u.std, 30.0], (200, 1))
    assert [(e.kind, e.signal) for e in feed(first, high)] == [("input_level", "u")]
    second = ResidualMonitor(["y"], calibration, boundary=BOUNDARY)
    assert second.restore(json.loads(json.dumps(first.state())))
    silent = np.tile([10.0, np.nan, 30.0], (500, 1))  # no readings of u: its EWMA holds, the alert stays open
    assert feed(second, silent, start=200) == [] and second.open_alerts == [("u", "input_level")]


def test_accepting_a_window_as_the_new_normal_moves_the_input_s_level(calibration):
    w = calibration.input_levels["w"]
    moved = three_inputs(2000, 40)
    moved[:, 2] += 2 * w.drift_threshold * w.std
    before = ResidualMonitor(["y"], calibration, boundary=BOUNDARY)
    assert [e.signal for e in feed(before, moved[:500])] == ["w"]
    window = moved[:300]
    accepted = rebaselined(calibration, ["y"], np.zeros((300, 1)), np.zeros((300, 1)),
                           {name: window[:, b] for b, name in enumerate(BOUNDARY)})
    assert accepted.input_levels["w"].mean == pytest.approx(window[:, 2].mean())
    assert accepted.input_levels["w"].std >= w.std  # a window never makes the alert more sensitive
    assert accepted.input_levels["u"].mean == pytest.approx(window[:, 1].mean()) and "v" not in accepted.input_levels
    assert feed(ResidualMonitor(["y"], accepted, boundary=BOUNDARY), moved[300:], start=300) == []


def test_ensembles_calibrated_before_levels_existed_watch_no_level(calibration):
    old = calibration.model_copy(update={"input_levels": {}})
    monitor = ResidualMonitor(["y"], old, boundary=BOUNDARY)
    assert monitor.inputs == ["v", "u"] and not len(monitor.input_level.columns)
    assert "input_level" not in monitor.state()["parts"]  # saved as before levels existed
    assert feed(monitor, np.tile([10.0, 500.0, 30.0], (300, 1))) == []
    assert MonitorCalibration.model_validate_json(old.model_dump_json()).input_levels == {}


def test_with_a_baseline_half_life_slow_change_is_followed_and_a_step_still_alarms(calibration):
    following = calibration.model_copy(update={"baseline_halflife": 150.0})
    w = following.input_levels["w"]
    memory = 150.0 / np.log(2)
    ramp = int(2 / 0.15 * memory)  # two limits, at 0.15 of a limit per baseline memory: slow normal change
    calm = three_inputs(500 + ramp + 300, 50)
    ramped, stepped = calm.copy(), calm.copy()
    ramped[500:, 2] += np.minimum(np.arange(ramp + 300) / ramp, 1.0) * 2 * w.drift_threshold * w.std
    assert feed(ResidualMonitor(["y"], following, boundary=BOUNDARY), ramped) == []
    stepped[500:, 2] += 2 * w.drift_threshold * w.std  # the same move at once
    events = feed(ResidualMonitor(["y"], following, boundary=BOUNDARY), stepped)
    assert [(e.kind, e.signal, e.opened) for e in events][:1] == [("input_level", "w", True)]
    assert int(events[0].first_sample) >= 500
