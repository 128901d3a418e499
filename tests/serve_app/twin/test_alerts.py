"""Residuals and alerts on the twin stream (issue 7) through a real server: replies carry residuals,
`alert` / `alert_cleared` are pushed in order, stored in the session and MongoDB, and bad measured
values get clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, Fault, simulate
from tests.support.twin_stream import alert_changes, configured, measured, receive_until, send_measured
from tests.support.wire import as_signals, run


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_stuck_sensor_raises_and_clears_an_alert_stored_everywhere(server, binary):
    data = simulate(300, seed=61, faults=(Fault("stuck", 100, 200, "Temperature_target_1"),))

    async def scenario():
        peer, ack = await configured(server, binary, mode="batch", batch_size=300)
        assert ack["ensemble_info"]["monitoring"] is True
        await peer.send({"type": "predict_batch", "id": "b1", "data": {
            "batch": [as_signals(r) for r in data.boundary], "timestamps": data.timestamps,
            "actual_signals": [measured(r) for r in data.target]}}, binary)
        messages = await receive_until(peer, lambda m: m["type"] == "alert_cleared")
        await peer.ws.close()
        return ack["session_id"], messages

    session_id, messages = run(scenario())
    reply, alert, cleared = messages
    assert reply["type"] == "prediction_batch" and reply["id"] == "b1"
    predicted = np.array([[p[t] for t in TARGET_SIGNALS] for p in reply["data"]["predictions"]])
    residuals = np.array([[r[t] for t in TARGET_SIGNALS] for r in reply["data"]["residuals"]])
    assert np.allclose(residuals, data.target - predicted, atol=1e-6)
    assert alert["type"] == "alert" and alert["data"]["signal"] == "Temperature_target_1"
    assert alert["data"]["kind"] == "stuck" and alert["data"]["first_sample"] == data.timestamps[100]
    assert alert["data"]["score"] >= alert["data"]["threshold"] and alert["data"]["message"]
    assert cleared["data"]["kind"] == "stuck" and cleared["data"]["sample"] == data.timestamps[200]

    stored = server.api.get("/api/v1/alerts", params={"session_id": session_id}, timeout=30).json()["alerts"]
    assert [(a["kind"], a["opened"]) for a in stored] == [("stuck", False), ("stuck", True)]  # newest first
    assert server.api.get("/api/v1/alerts", params={"session_id": session_id, "kind": "drift"},
                     timeout=30).json()["alerts"] == []
    history = server.api.get(f"/api/v1/inference/stream/history/{session_id}", params={"format": "json"},
                        timeout=30).json()
    assert [a["opened"] for a in history["alerts"]] == [True, False]
    stats = history["residual_stats"]["Temperature_target_1"]
    assert stats["count"] == 300 and stats["mean"] == pytest.approx(residuals[:, 0].mean(), abs=1e-6)
    assert history["samples"][150]["actual"]["Temperature_target_1"] == pytest.approx(data.target[150, 0])
    figures = server.api.get("/api/v1/alerts/figures", params={"session_id": session_id}, timeout=30).json()
    standing = 200 - data.timestamps.index(alert["data"]["sample"])  # from the sample that raised it to the clearing
    assert figures["alerts_opened"] == 1 and figures["standing_share"] == pytest.approx(standing / 299, abs=1e-3)
    assert server.api.get("/api/v1/alerts/figures", params={"session_id": "no-such-session"}).status_code == 404


def test_a_resumed_session_continues_its_detectors_and_open_alerts(server):
    """The stuck alert opened before the reconnect is not opened again after it, and clears when the
    sensor moves again: the resumed connection continues the session's monitor."""
    data = simulate(300, seed=61, faults=(Fault("stuck", 100, 200, "Temperature_target_1"),))

    async def scenario():
        peer, ack = await configured(server, mode="batch", batch_size=300)
        before = await send_measured(peer, data, slice(0, 150))
        await peer.ws.close()
        again, resumed = await configured(server, mode="batch", batch_size=300, session_id=ack["session_id"])
        after = await send_measured(again, data, slice(150, 300))
        await again.ws.close()
        return resumed, before, after

    resumed, before, after = run(scenario())
    assert resumed["resumed"] is True
    assert alert_changes(before) == [("alert", "stuck", "Temperature_target_1")]
    assert alert_changes(after) == [("alert_cleared", "stuck", "Temperature_target_1")]
    cleared = [m for m in after if m["type"] == "alert_cleared"][0]
    assert cleared["data"]["first_sample"] == data.timestamps[100] and cleared["data"]["sample"] == data.timestamps[200]


def test_an_input_held_at_an_unusual_level_inside_its_range_raises_input_level(server):
    """The pump's speed ramps to 2,250 rpm - inside the range the twin was trained on (to 2,366), beyond
    the level normal operation holds - stays there for 240 samples and ramps back: `input_level` opens on
    the speed (not `envelope`) and clears after the speed is back."""
    speed = BOUNDARY_SIGNALS.index("Speed_boundary_1")
    wandering = simulate(700, seed=72).boundary
    held = wandering.copy()
    held[100:460, speed] = np.interp(np.arange(100, 460), [100, 160, 400, 459],
                                     [wandering[100, speed], 2250.0, 2250.0, wandering[459, speed]])
    data = simulate(700, seed=72, boundary=held)  # the plant's physics on those inputs

    async def scenario():
        peer, _ = await configured(server, mode="batch", batch_size=350, alert_flood={"max_alerts": 100})
        messages = await send_measured(peer, data, slice(0, 350)) + await send_measured(peer, data, slice(350, 700))
        await peer.ws.close()
        return messages

    changes = alert_changes(run(scenario()))
    on_inputs = [(change, kind) for change, kind, signal in changes if signal in BOUNDARY_SIGNALS]
    assert on_inputs == [("alert", "input_level"), ("alert_cleared", "input_level")]
    assert {signal for _, _, signal in changes if signal in BOUNDARY_SIGNALS} == {"Speed_boundary_1"}


def test_single_predict_carries_residuals_and_missing_values(server):
    data = simulate(5, seed=3)

    async def scenario():
        peer, _ = await configured(server, alert_thresholds={"Power_target_2": {"missing_samples": 1}})
        first = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(data.boundary[0]),
                                                            "actual_signals": measured(data.target[0])}})
        assert first["type"] == "prediction"  # all measured: no alert follows
        actual = measured(data.target[1]) | {"Power_target_2": None}
        reply = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(data.boundary[1]),
                                                            "actual_signals": actual}})
        alert = await peer.recv()
        plain = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(data.boundary[2])}})
        await peer.ws.close()
        return reply, alert, plain

    reply, alert, plain = run(scenario())
    prediction = reply["data"]["predictions"]
    assert reply["data"]["residuals"]["Power_target_2"] is None
    assert reply["data"]["residuals"]["Temperature_target_1"] == pytest.approx(
        data.target[1, 0] - prediction["Temperature_target_1"])
    assert alert["type"] == "alert" and (alert["data"]["signal"], alert["data"]["kind"]) == (
        "Power_target_2",
        "missing",
    )
    assert "residuals" not in plain["data"]  # no measured values, no residuals


@pytest.mark.parametrize("actual,code", [
    ({"Temperature_target_9": 1.0}, "UNKNOWN_SIGNALS"),
    ({"Temperature_target_1": "hot"}, "INVALID_SIGNAL_VALUE"),
    ({"Temperature_target_1": True}, "INVALID_SIGNAL_VALUE"),
    ({"Temperature_target_1": float("nan")}, "INVALID_SIGNAL_VALUE"),
    ([1.0, 2.0], "INVALID_MESSAGE"),
], ids=["unknown", "string", "bool", "nan", "list"])
def test_bad_actual_signals_get_clear_errors(server, actual, code):
    x = simulate(2, seed=8).boundary

    async def scenario():
        peer, _ = await configured(server, True, mode="batch", batch_size=10)  # msgpack can carry NaN
        single = await peer.ask(
            {"type": "predict", "data": {"boundary_signals": as_signals(x[0]), "actual_signals": actual}}, True
        )
        batch = await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x],
                                                                  "actual_signals": [actual, None]}}, True)
        short = await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x],
                                                                  "actual_signals": [None]}}, True)
        alive = await peer.ask({"type": "ping"}, True)
        await peer.ws.close()
        return single, batch, short, alive

    single, batch, short, alive = run(scenario())
    assert single["type"] == "error" and single["error_code"] == code, single
    assert batch["type"] == "error" and batch["error_code"] == code, batch
    assert short["error_code"] == "INVALID_MESSAGE" and alive["type"] == "pong"


@pytest.mark.parametrize("thresholds,problem", [
    ({"Pressure_target_7": {"missing_samples": 3}}, "unknown target"),
    ({"*": {"drift_threshold": -1.0}}, "greater than 0"),
    ({"*": {"no_such_setting": 1}}, "Extra inputs"),
    ({"Power_target_1": {"stuck_samples": "ten"}}, "valid integer"),
], ids=["unknown-signal", "negative", "unknown-field", "wrong-type"])
def test_bad_alert_threshold_overrides_are_refused(server, thresholds, problem):
    async def scenario():
        peer, _ = await configured(server)
        reply = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name,
                                                           "alert_thresholds": thresholds}})
        await peer.ws.close()
        return reply
    reply = run(scenario())
    assert reply["type"] == "error" and reply["error_code"] == "INVALID_CONFIG"
    assert problem in str(reply), reply
