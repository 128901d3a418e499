"""Operator actions against the real server: shelving an alert holds it back from the client and
announces how it stands when the time runs out (also to a client that resumed the session meanwhile);
accepting a window as the new normal clears a standing alert and a rollback brings it back;
recalibration proposals from alert-free operation; every action recorded with who and why; bad requests
get 4xx and change nothing; twin clients get 403."""

from __future__ import annotations

import time

import pytest

from models.twin.plant import BOUNDARY_SIGNALS, Fault, simulate
from tests.support.server import CLIENT_TOKEN
from tests.support.twin_stream import alert_changes, configured, copied_ensemble, send_measured
from tests.support.wire import run

SHELVE_S = 2.0


def test_a_shelved_alert_is_held_back_and_announced_again_when_its_time_runs_out(server):
    data = simulate(520, seed=71, faults=(Fault("stuck", 100, 250, "Temperature_target_1"),
                                          Fault("stuck", 330, 520, "Temperature_target_1")))
    key = ("stuck", "Temperature_target_1")

    async def scenario():
        peer, ack = await configured(server, mode="batch", batch_size=300)
        session = ack["session_id"]
        first = await send_measured(peer, data, slice(0, 300))  # opens and clears
        assert [c for c in alert_changes(first)] == [("alert", *key), ("alert_cleared", *key)]
        shelve = {"session_id": session, "signal": "Temperature_target_1", "kind": "stuck", "duration_s": SHELVE_S,
                  "reason": "sensor under maintenance"}
        async with server.async_api() as api, server.async_api(CLIENT_TOKEN) as client:
            assert (await client.post("/api/admin/alerts/shelve", json=shelve)).status_code == 403
            for bad, status in [({"kind": "drift"}, 404), ({"session_id": "nobody"}, 404), ({"duration_s": 0}, 422),
                                ({"duration_s": 2 * 86_400}, 422), ({"reason": ""}, 422)]:
                assert (await api.post("/api/admin/alerts/shelve", json={**shelve, **bad})).status_code == status, bad
            assert (await api.get("/api/admin/alerts/shelves", params={"session_id": session})).json()["shelves"] == []
            shelved = (await api.post("/api/admin/alerts/shelve", json=shelve)).json()["shelved"]
            held = (await api.get("/api/admin/alerts/shelves", params={"session_id": session})).json()["shelves"]
        assert shelved["by"].startswith("admin:") and shelved["reason"] == "sensor under maintenance"
        assert [(s["signal"], s["kind"]) for s in held] == [("Temperature_target_1", "stuck")]
        during = await send_measured(peer, data, slice(300, 450))  # the second stuck opens while shelved
        await peer.ws.close()  # the client reconnects meanwhile: the session keeps what its client has heard
        again, _ = await configured(server, mode="batch", batch_size=300, session_id=session)
        time.sleep(SHELVE_S + 1.2)  # the shelving runs out (replicas refresh every second)
        after = await send_measured(again, data, slice(450, 470))
        await again.ws.close()
        return session, during, after

    session, during, after = run(scenario())
    assert alert_changes(during) == []
    assert alert_changes(after) == [("alert", "stuck", "Temperature_target_1")]
    announced = [m["data"] for m in after if m["type"] == "alert"][0]
    assert announced["reannounced"] is True and announced["first_sample"] == data.timestamps[330]
    stored = server.api.get("/api/v1/alerts", params={"session_id": session}).json()["alerts"]
    assert [(a["opened"], a["shelved"]) for a in stored[:2]] == [(True, False), (True, True)]  # newest first


@pytest.fixture
def own_ensemble(server):
    """A copy of the demo ensemble whose calibration this module may change."""
    with copied_ensemble(server, "OperatorAccept") as name:
        yield name


def test_accepting_a_new_normal_clears_the_standing_alert_and_a_rollback_brings_it_back(server, own_ensemble):
    name = own_ensemble
    normal, drifted = 1100, 1700
    data = simulate(drifted, seed=72, faults=(Fault("drift", normal, drifted, "Temperature_target_2",
                                                    magnitude=3.0, ramp=50),))
    calibration = f"/api/admin/ensembles/{name}/calibration"

    async def scenario():
        peer, ack = await configured(server, ensemble_name=name, mode="batch", batch_size=300)
        session = ack["session_id"]
        async with server.async_api() as api, server.async_api(CLIENT_TOKEN) as client:
            assert (await client.get(f"{calibration}/proposal", params={"session_id": session})).status_code == 403
            before = [await send_measured(peer, data, slice(s, s + 300)) for s in range(0, 900, 300)]
            early = await api.get(f"{calibration}/proposal", params={"session_id": session})
            before.append(await send_measured(peer, data, slice(900, normal)))
            proposal = (await api.get(f"{calibration}/proposal", params={"session_id": session})).json()
            applied = (await api.post(f"{calibration}/proposal", json={"session_id": session,
                                                                       "reason": "a month of quiet operation"})).json()
            assert (await api.post(f"{calibration}/rollback", json={"reason": "keep the commissioning one"})
                    ).status_code == 200
            fault = [await send_measured(peer, data, slice(s, s + 200)) for s in range(normal, 1500, 200)]
            window = {"session_id": session, "start": data.timestamps[1300], "end": data.timestamps[1499],
                      "reason": "new heat exchanger: this is normal now"}
            refused = [(await api.post(f"{calibration}/accept", json={**window, **bad})).status_code for bad in (
                {"start": "2001-01-01T00:00:00+00:00", "end": "2001-01-01T01:00:00+00:00"},  # empty
                {"end": "2999-01-01T00:00:00+00:00"},  # the future
                {"start": data.timestamps[1499], "end": data.timestamps[1300]},  # backwards
                {"start": "yesterday"}, {"session_id": "nobody"})]
            assert (await api.post("/api/admin/ensembles/Ensemble_Nope_1/calibration/accept", json=window)
                    ).status_code == 404
            assert (await client.post(f"{calibration}/accept", json=window)).status_code == 403
            accepted = (await api.post(f"{calibration}/accept", json=window)).json()
            accepted_rows = await send_measured(peer, data, slice(1500, 1600))
            versions = (await api.get(calibration)).json()
            rolled = (await api.post(f"{calibration}/rollback", json={"reason": "it was a fault after all"})).json()
            back = await send_measured(peer, data, slice(1600, 1700))
            again = await api.post(f"{calibration}/rollback", json={"reason": "once more"})
        await peer.ws.close()
        return early, before, proposal, applied, fault, refused, accepted, accepted_rows, versions, rolled, back, again

    early, before, proposal, applied, fault, refused, accepted, accepted_rows, versions, rolled, back, again = run(
        scenario())
    assert early.status_code == 409 and "alert-free" in early.json()["detail"]
    assert all(alert_changes(m) == [] for m in before)
    assert proposal["samples"] == normal and proposal["in_force"] == 0
    drift = proposal["thresholds"]["Temperature_target_2"]["drift_threshold"]
    assert drift["now"] > 0 and drift["proposed"] > 0
    assert applied["version"] == 1 and applied["replaces"] == 0
    opened = [c for m in fault for c in alert_changes(m)]
    assert ("alert", "drift", "Temperature_target_2") in opened
    assert refused == [422, 422, 422, 422, 404]
    assert accepted["version"] == 2 and accepted["replaces"] == 0 and accepted["samples"] == 200
    level = accepted["levels"]["Temperature_target_2"]["residual_mean"]
    assert level["now"] - level["was"] > 2.0  # the sensor reads about 3 K higher now
    speed = accepted["input_levels"]["Speed_boundary_1"]["mean"]  # the inputs' normal levels are the window's too
    window_speed = data.boundary[1300:1500, BOUNDARY_SIGNALS.index("Speed_boundary_1")].mean()
    assert speed["now"] == pytest.approx(window_speed) and speed["was"] != pytest.approx(window_speed)
    assert versions["input_levels"]["Speed_boundary_1"]["mean"] == pytest.approx(window_speed)
    assert ("alert_cleared", "drift", "Temperature_target_2") in alert_changes(accepted_rows)
    assert ("alert", "drift", "Temperature_target_2") not in alert_changes(accepted_rows)
    assert versions["in_force"] == 2
    assert [(v["version"], v["action"], v["rolled_back"] is None) for v in versions["versions"]] == [
        (2, "accept_new_normal", True), (1, "recalibration", False)]
    assert versions["versions"][0]["by"].startswith("admin:") and versions["versions"][0]["window"]["samples"] == 200
    assert rolled == {"ensemble": name, "rolled_back": 2, "in_force": 0}
    assert ("alert", "drift", "Temperature_target_2") in alert_changes(back)  # judged against the old normal
    assert again.status_code == 409
