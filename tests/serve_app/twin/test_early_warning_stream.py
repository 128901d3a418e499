"""Early warning over the wire (a real server): a twin of target signals only served with the same
protocol, alerts that name their contributing signals, acknowledgement, and alarm-flood protection."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bench.skab import TRAIN_ROWS, Run
from models.twin.dataset import SignalTable
from models.twin.ensemble import Ensemble
from models.twin.plant import TARGET_SIGNALS, simulate
from tests.support.paths import SKAB_FIXTURES
from tests.support.server import OTHER_CLIENT_TOKEN
from tests.support.twin_stream import measured, receive_until
from tests.support.wire import Peer, as_signals, connect, run


@pytest.fixture(scope="module")
def testbed_twin(server):
    """A twin of SKAB's 8 sensors from the first 400 rows of a valve run, in the server's repository."""
    from models.twin.train import train_ensemble
    testbed = Run.read(SKAB_FIXTURES / "valve1-0.csv")
    folder = train_ensemble(SignalTable(np.empty((TRAIN_ROWS, 0)), testbed.values[:TRAIN_ROWS], None), [],
                            testbed.signals, server.demo.folder.parent, "Testbed", epochs=10, boost_epochs=5)
    yield Ensemble(folder)
    # the shared server's other tests expect its own ensembles only
    assert server.api.delete(f"/api/admin/ensembles/{folder.name}").status_code == 204


async def open_testbed_session(server, ensemble: Ensemble, **config) -> tuple[Peer, dict]:
    peer = Peer(await connect(server).__aenter__())
    ack = await peer.ask({"type": "config", "data": {"ensemble_name": ensemble.name, **config}})
    assert ack["type"] == "config_ack", ack
    return peer, ack


async def reply(peer: Peer, message: dict) -> dict:
    """The reply to `message`, past any alerts pushed meanwhile."""
    await peer.send(message)
    while (received := await peer.recv())["type"] in ("alert", "alert_cleared"):
        pass
    return received


def readings(names: list[str], row: np.ndarray) -> dict:
    return dict(zip(names, row.tolist()))


def test_a_twin_of_target_signals_only_is_served_with_the_same_protocol(server, testbed_twin):
    testbed = Run.read(SKAB_FIXTURES / "valve1-0.csv")
    names, rows = testbed.signals, testbed.values[TRAIN_ROWS:TRAIN_ROWS + 20]

    async def scenario():
        peer, ack = await open_testbed_session(server, testbed_twin, mode="batch", batch_size=50)
        one = await reply(peer, {"type": "predict", "data": {"actual_signals": readings(names, rows[0]),
                                                          "timestamp": testbed.timestamps[TRAIN_ROWS]}})
        batch = await reply(
            peer,
            {
                "type": "predict_batch",
                "data": {
                    "actual_signals": [readings(names, r) for r in rows],
                    "timestamps": testbed.timestamps[TRAIN_ROWS : TRAIN_ROWS + 20],
                },
            },
        )
        partly = await reply(
            peer, {"type": "predict", "data": {"actual_signals": {**readings(names, rows[1]), "Current": None}}}
        )
        errors = [await reply(peer, {"type": "predict", "data": data}) for data in (
            {},  # no measured values: nothing to predict from
            {"actual_signals": {n: None for n in names}},
            {"boundary_signals": {"Current": 1.0}, "actual_signals": readings(names, rows[0])},
        )]
        errors.append(await reply(peer, {"type": "predict_batch", "data": {
            "batch": [{"Current": 1.0}], "actual_signals": [readings(names, rows[0])]}}))
        await peer.ws.close()
        return ack, one, batch, partly, errors

    ack, one, batch, partly, errors = run(scenario())
    assert ack["ensemble_info"]["boundary_signals"] == [] and ack["ensemble_info"]["target_signals"] == names
    assert ack["ensemble_info"]["monitoring"] is True
    expected = testbed_twin.predict(rows)
    np.testing.assert_allclose([one["data"]["predictions"][n] for n in names], expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        [one["data"]["residuals"][n] for n in names], rows[0] - expected[0], rtol=1e-5, atol=1e-5
    )
    assert batch["type"] == "prediction_batch" and batch["data"]["count"] == 20
    np.testing.assert_allclose([[p[n] for n in names] for p in batch["data"]["predictions"]], expected, rtol=1e-5,
                               atol=1e-5)
    assert partly["type"] == "prediction" and partly["data"]["residuals"]["Current"] is None
    assert [e["error_code"] for e in errors] == ["MISSING_SIGNALS", "MISSING_SIGNALS", "UNKNOWN_SIGNALS",
                                                 "UNKNOWN_SIGNALS"]


def test_a_real_fault_opens_alerts_that_name_their_signals_and_can_be_acknowledged(server, testbed_twin):
    testbed = Run.read(SKAB_FIXTURES / "valve1-0.csv")  # the outlet valve closes around row 573
    names = testbed.signals

    async def scenario():
        peer, ack = await open_testbed_session(server, testbed_twin, mode="batch", batch_size=1000)
        await peer.send(
            {
                "type": "predict_batch",
                "data": {
                    "actual_signals": [readings(names, r) for r in testbed.values[:900]],
                    "timestamps": testbed.timestamps[:900],
                },
            }
        )
        messages = await receive_until(peer, lambda m: m["type"] == "alert", limit=200)
        await peer.ws.close()
        return ack["session_id"], messages

    session_id, messages = run(scenario())
    alert = messages[-1]["data"]
    assert alert["contributors"] and set(alert["contributors"]) <= set(names) | {"*"}
    assert alert["kind"] in ("drift", "spike", "multivariate") and alert["message"]
    if alert["kind"] == "multivariate":
        assert alert["signal"] == "*" and alert["contributors"][0] in alert["message"]
    else:
        assert alert["contributors"] == [alert["signal"]]
    ack_body = {"session_id": session_id, "signal": alert["signal"], "kind": alert["kind"]}
    # the session belongs to the twin client that opened it: another client cannot acknowledge its alerts
    other = httpx.post(f"{server.http}/api/v1/alerts/ack", json=ack_body, headers=server.headers(OTHER_CLIENT_TOKEN))
    assert other.status_code == 404
    acknowledged = server.api.post("/api/v1/alerts/ack", json=ack_body)
    assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged"] is True
    stored = server.api.get("/api/v1/alerts", params={"session_id": session_id, "kind": alert["kind"]}).json()["alerts"]
    opened = [a for a in stored if a["opened"] and a["signal"] == alert["signal"]]
    assert opened[0]["acknowledged_at"] and opened[0]["contributors"] == alert["contributors"]
    unknown = server.api.post("/api/v1/alerts/ack", json={**ack_body, "kind": "stuck"})
    assert unknown.status_code == 404
    assert server.api.post("/api/v1/alerts/ack", json={**ack_body, "kind": "nonsense"}).status_code == 422


def test_an_alarm_flood_is_summarised_per_session(server):
    """Four sensors stop reporting at once: with a cap of two alerts, two `missing` alerts reach the
    client, then one `flood` alert naming the rest; another session is not affected."""
    data = simulate(40, seed=71)
    silent = TARGET_SIGNALS[:4]
    actual = [measured(r) for r in data.target]
    for row in actual[10:]:
        row.update({s: None for s in silent})

    async def scenario(flood_cap: int | None):
        config = {"ensemble_name": server.demo.name, "mode": "batch", "batch_size": 40,
                  "alert_thresholds": {"*": {"missing_samples": 3}}}
        if flood_cap is not None:
            config["alert_flood"] = {"max_alerts": flood_cap, "window_s": 600}
        peer = Peer(await connect(server).__aenter__())
        assert (await peer.ask({"type": "config", "data": config}))["type"] == "config_ack"
        await peer.send({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in data.boundary],
                                                           "timestamps": data.timestamps, "actual_signals": actual}})
        messages = []
        reply = await peer.recv()
        assert reply["type"] == "prediction_batch", reply
        await peer.send({"type": "ping"})
        while (message := await peer.recv())["type"] != "pong":
            messages.append(message)
        bad = await peer.ask({"type": "config", "data": {**config, "alert_flood": {"max_alerts": 0}}})
        await peer.ws.close()
        return messages, bad

    capped, bad = run(scenario(2))
    opened = [(m["data"]["signal"], m["data"]["kind"]) for m in capped if m["type"] == "alert"]
    assert opened == [(silent[0], "missing"), (silent[1], "missing"), ("*", "flood")]
    flood = capped[-1]["data"]
    assert set(flood["contributors"]) == set(silent[2:]) and "held back" in flood["message"]
    assert bad["type"] == "error" and bad["error_code"] == "INVALID_CONFIG"
    uncapped, _ = run(scenario(None))  # the default cap (5 in 10 minutes) lets four alerts through
    assert [(m["data"]["signal"], m["data"]["kind"]) for m in uncapped if m["type"] == "alert"] == \
        [(s, "missing") for s in silent]
