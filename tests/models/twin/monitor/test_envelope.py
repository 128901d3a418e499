"""`envelope`: boundary inputs against the range the twin was trained on."""

from __future__ import annotations

import json

import numpy as np

from models.twin.monitor.calibration import AlertThresholds, InputRange, MonitorCalibration, SignalCalibration
from models.twin.monitor.envelope import OUTSIDE_SAMPLES, input_ranges
from models.twin.monitor.residual_monitor import ResidualMonitor

CLEAR = 5


def monitor(inputs: dict[str, InputRange], boundary: list[str]) -> ResidualMonitor:
    signal = SignalCalibration(lag=0.0, residual_mean=0.0, residual_std=1.0, step_std=1.0)
    thresholds = AlertThresholds(drift_threshold=100.0, spike_threshold=100.0, clear_samples=CLEAR)
    calibration = MonitorCalibration(signals={"y": signal}, thresholds={"y": thresholds}, validation_samples=100,
                                     threshold_margin=1.0, inputs=inputs, envelope_margin=0.1)
    return ResidualMonitor(["y"], calibration, boundary=boundary)


def feed(m: ResidualMonitor, u: list[float], start: int = 0) -> list:
    n = len(u)
    boundary = np.column_stack([np.full(n, 5.0), u])  # "v" steady inside, "u" as given
    y = np.random.default_rng(start).normal(size=(n, 1))
    return m.update(np.zeros((n, 1)), y, [str(start + i) for i in range(n)], boundary)


def test_ranges_leave_out_missing_values_and_unseen_signals():
    values = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    assert input_ranges(["a", "b"], values) == {"a": InputRange(low=1.0, high=3.0)}


def test_outside_for_a_few_samples_opens_inside_for_the_off_delay_clears():
    m = monitor({"u": InputRange(low=0.0, high=10.0), "v": InputRange(low=0.0, high=10.0)}, ["v", "u"])
    assert m.inputs == ["v", "u"]
    assert feed(m, [9.0, 10.9, -0.9, 12.0, 12.0]) == []  # within the 10% margin, then two samples beyond it
    opened = feed(m, [12.0, np.nan, 11.5], start=5)
    assert [(e.kind, e.signal, e.opened) for e in opened] == [("envelope", "u", True)]
    assert opened[0].first_sample == "3" and opened[0].sample == "5"  # the condition began at sample 3
    assert opened[0].score > opened[0].threshold == 0.1
    assert ("u", "envelope") in m.open_alerts
    assert feed(m, [np.nan] + [5.0] * (CLEAR - 2), start=8) == []  # a missing input counts as inside
    cleared = feed(m, [5.0], start=8 + CLEAR - 1)
    assert [(e.signal, e.opened) for e in cleared] == [("u", False)] and m.open_alerts == []
    assert OUTSIDE_SAMPLES == 3


def test_state_carries_an_open_envelope_alert_across_a_restore():
    ranges = {"u": InputRange(low=0.0, high=10.0)}
    first = monitor(ranges, ["v", "u"])
    feed(first, [20.0] * OUTSIDE_SAMPLES)
    assert first.open_alerts == [("u", "envelope")]
    second = monitor(ranges, ["v", "u"])
    assert second.restore(json.loads(json.dumps(first.state())))
    assert feed(second, [20.0] * 10, start=3) == []  # still open: not opened again
    assert [e.opened for e in feed(second, [5.0] * CLEAR, start=13)] == [False]


def test_without_ranges_nothing_is_watched_and_old_states_still_fit():
    m = monitor({}, ["v", "u"])
    assert m.inputs == [] and feed(m, [1e9] * 10) == []
    assert m.restore(monitor({}, ["v", "u"]).state())
    assert not m.restore(monitor({"u": InputRange(low=0.0, high=1.0)}, ["v", "u"]).state())
