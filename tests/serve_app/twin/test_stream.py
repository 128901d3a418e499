"""Every message and error path of the twin stream, through a real Ray Serve server and real clients."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS
from tests.support.server import MAX_MESSAGE_BYTES
from tests.support.twin_stream import configured, expected, values
from tests.support.wire import Peer, as_signals, connect, rows, run


def test_config_ack_has_the_original_shape(server):
    async def scenario():
        peer, ack = await configured(server)
        await peer.ws.close()
        return ack
    ack = run(scenario())
    assert ack["status"] == "success" and isinstance(ack["message"], str) and len(ack["session_id"]) >= 16
    info = ack["ensemble_info"]
    assert info["ensemble_name"] == server.demo.name
    assert info["num_signals"] == len(TARGET_SIGNALS)
    assert info["signals_using_boost"] == len(server.demo.manifest.boost_signals)
    assert info["boundary_signals"] == BOUNDARY_SIGNALS and info["target_signals"] == TARGET_SIGNALS


def test_the_server_declines_websocket_compression_that_clients_offer(server):
    async def scenario():
        async with connect(server) as ws:  # the websockets client offers permessage-deflate by default
            offered = ws.request.headers.get("Sec-WebSocket-Extensions")
            peer = Peer(ws)
            ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name}})
            return offered, ws.response.headers.get("Sec-WebSocket-Extensions"), ack
    offered, accepted, ack = run(scenario())
    assert "permessage-deflate" in offered
    assert accepted is None and ack["type"] == "config_ack"  # plain frames, and the stream works


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_predict_single_and_batch_match_the_model(server, binary):
    x = rows(40, seed=31)

    async def scenario():
        peer, _ = await configured(server, binary, mode="batch", batch_size=40)
        single = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[0]),
                                                              "timestamp": "2026-01-01T00:00:00Z"}}, binary)
        batch = await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x]}}, binary)
        pong = await peer.ask({"type": "ping"}, binary)
        await peer.ws.close()
        return single, batch, pong

    single, batch, pong = run(scenario())
    assert single["type"] == "prediction" and single["status"] == "success"
    data = single["data"]
    np.testing.assert_allclose(values(data["predictions"]), expected(server.demo, x[0])[0], rtol=1e-5, atol=1e-5)
    assert data["signals_used_boost"] == server.demo.manifest.boost_signals
    assert data["latency_ms"] > 0 and data["timestamp"] == "2026-01-01T00:00:00Z"
    assert batch["type"] == "prediction_batch" and batch["data"]["count"] == 40
    got = np.array([values(p) for p in batch["data"]["predictions"]])
    np.testing.assert_allclose(got, expected(server.demo, x), rtol=1e-5, atol=1e-5)
    assert pong["type"] == "pong" and "timestamp" in pong


def test_manual_boost_override_and_include_metadata(server):
    x = rows(5, seed=32)
    flip = {t: t not in server.demo.manifest.boost_signals for t in TARGET_SIGNALS}

    async def scenario():
        peer, ack = await configured(server, manual_boost_signals=flip, include_metadata=False)
        reply = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[0])}})
        await peer.ws.close()
        return ack, reply

    ack, reply = run(scenario())
    assert ack["ensemble_info"]["boost_signals"] == [t for t in TARGET_SIGNALS if flip[t]]
    np.testing.assert_allclose(
        values(reply["data"]["predictions"]), expected(server.demo, x[0], flip)[0], rtol=1e-5, atol=1e-5
    )
    assert "latency_ms" not in reply["data"] and "signals_used_boost" not in reply["data"]


def test_pipelined_requests_echo_their_ids_in_order(server):
    x = rows(60, seed=33)

    async def scenario():
        peer, _ = await configured(server)
        for i, r in enumerate(x):
            await peer.send({"type": "predict", "id": f"req-{i}", "data": {"boundary_signals": as_signals(r)}})
        replies = [await peer.recv() for _ in x]
        await peer.ws.close()
        return replies

    replies = run(scenario())
    assert [r["id"] for r in replies] == [f"req-{i}" for i in range(len(x))]
    got = np.array([values(r["data"]["predictions"]) for r in replies])
    np.testing.assert_allclose(got, expected(server.demo, x), rtol=1e-5, atol=1e-5)


def test_two_ensembles_at_once_are_never_mixed(server):
    x = rows(24, seed=34)

    async def stream(ensemble, offset):
        async with connect(server) as ws:
            peer = Peer(ws)
            await peer.ask({"type": "config", "data": {"ensemble_name": ensemble.name}})
            for i in range(offset, len(x), 2):
                await peer.send({"type": "predict", "id": i, "data": {"boundary_signals": as_signals(x[i])}})
            return [await peer.recv() for _ in range(offset, len(x), 2)]

    async def scenario():
        return await asyncio.gather(*(stream(e, o) for e in (server.demo, server.tiny) for o in (0, 1)))

    for (ensemble, _), replies in zip(
        [(server.demo, 0), (server.demo, 1), (server.tiny, 0), (server.tiny, 1)], run(scenario())
    ):
        targets = ensemble.manifest.target_signals
        for reply in replies:
            assert set(reply["data"]["predictions"]) == set(targets)
            np.testing.assert_allclose(values(reply["data"]["predictions"], targets),
                                       expected(ensemble, x[reply["id"]])[0], rtol=1e-5, atol=1e-5)


def _signals(**changes):
    base = as_signals(rows(1, seed=35)[0])
    for k, v in changes.items():
        if v is ...:
            base.pop(k)
        else:
            base[k] = v
    return base


BAD_AFTER_CONFIG = [
    ("not json", "{type: predict", "INVALID_JSON"),
    ("json array", "[1, 2, 3]", "INVALID_MESSAGE"),
    ("no type", json.dumps({"data": {}}), "INVALID_MESSAGE"),
    ("type not a string", json.dumps({"type": 5}), "INVALID_MESSAGE"),
    ("data not an object", json.dumps({"type": "predict", "data": [1]}), "INVALID_MESSAGE"),
    ("unknown type", {"type": "explode"}, "UNKNOWN_MESSAGE_TYPE"),
    (
        "missing signal",
        {"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1=...)}},
        "MISSING_SIGNALS",
    ),
    ("extra signal", {"type": "predict", "data": {"boundary_signals": _signals(Bogus_1=1.0)}}, "UNKNOWN_SIGNALS"),
    (
        "string value",
        {"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1="2.0")}},
        "INVALID_SIGNAL_VALUE",
    ),
    (
        "bool value",
        {"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1=True)}},
        "INVALID_SIGNAL_VALUE",
    ),
    (
        "null value",
        {"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1=None)}},
        "INVALID_SIGNAL_VALUE",
    ),
    (
        "NaN literal",
        json.dumps({"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1=float("nan"))}}),
        "INVALID_SIGNAL_VALUE",
    ),
    ("signals not an object", {"type": "predict", "data": {"boundary_signals": [1, 2]}}, "INVALID_MESSAGE"),
    ("no signals", {"type": "predict", "data": {}}, "INVALID_MESSAGE"),
    (
        "bad timestamp",
        {"type": "predict", "data": {"boundary_signals": _signals(), "timestamp": {"a": 1}}},
        "INVALID_MESSAGE",
    ),
    ("empty batch", {"type": "predict_batch", "data": {"batch": []}}, "EMPTY_BATCH"),
    ("batch not a list", {"type": "predict_batch", "data": {"batch": {"a": 1}}}, "INVALID_MESSAGE"),
    ("batch over session limit", {"type": "predict_batch", "data": {"batch": [_signals()] * 11}}, "BATCH_TOO_LARGE"),
    (
        "bad row in batch",
        {"type": "predict_batch", "data": {"batch": [_signals(), _signals(Flow_boundary_1=...)]}},
        "MISSING_SIGNALS",
    ),
    (
        "timestamps wrong length",
        {"type": "predict_batch", "data": {"batch": [_signals()], "timestamps": ["a", "b"]}},
        "INVALID_MESSAGE",
    ),
    ("config without ensemble", {"type": "config", "data": {}}, "MISSING_ENSEMBLE"),
    (
        "unknown ensemble",
        {"type": "config", "data": {"ensemble_name": "Ensemble_Nope_20200101_000000"}},
        "ENSEMBLE_NOT_FOUND",
    ),
    ("escaping ensemble name", {"type": "config", "data": {"ensemble_name": "../../etc/passwd"}}, "ENSEMBLE_NOT_FOUND"),
    ("batch_size over 1000", {"type": "config", "data": {"ensemble_name": "E", "batch_size": 5000}}, "INVALID_CONFIG"),
    ("bad mode", {"type": "config", "data": {"ensemble_name": "E", "mode": "turbo"}}, "INVALID_CONFIG"),
    ("oversize frame", "x" * (MAX_MESSAGE_BYTES + 1), "MESSAGE_TOO_LARGE"),
]


def test_every_bad_message_gets_an_error_and_the_connection_keeps_working(server):
    x = rows(1, seed=36)

    async def scenario():
        peer, _ = await configured(server, mode="batch", batch_size=10)
        answers = []
        for name, message, _ in BAD_AFTER_CONFIG:
            answers.append(await peer.ask(message))
            # after each bad message the session still predicts correctly
            good = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[0])}})
            assert good["type"] == "prediction", (name, good)
        # binary frames: garbage and a msgpack inf
        garbage = await peer.ask(b"\xc1\xc1\xc1", binary=True)
        inf = await peer.ask(
            {"type": "predict", "data": {"boundary_signals": _signals(Flow_boundary_1=float("inf"))}}, binary=True
        )
        unknown_boost = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name,
                                                                   "manual_boost_signals": {"Nope": True}}})
        await peer.ws.close()
        return answers, garbage, inf, unknown_boost

    answers, garbage, inf, unknown_boost = run(scenario())
    for (name, _, code), reply in zip(BAD_AFTER_CONFIG, answers):
        assert reply["type"] == "error", (name, reply)
        assert set(reply) >= {"error_code", "message", "details"}, name
        if code:
            assert reply["error_code"] == code, (name, reply)
    missing = answers[[n for n, _, _ in BAD_AFTER_CONFIG].index("missing signal")]
    assert missing["details"]["missing_signals"] == ["Flow_boundary_1"]
    assert garbage["error_code"] == "INVALID_JSON"
    assert inf["error_code"] == "INVALID_SIGNAL_VALUE"
    assert unknown_boost["error_code"] == "INVALID_CONFIG"


def test_messages_before_config_are_invalid(server):
    async def scenario():
        async with connect(server) as ws:
            peer = Peer(ws)
            first = await peer.ask({"type": "predict", "data": {"boundary_signals": _signals()}})
            ping = await peer.ask({"type": "ping"})
            ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name}})
            return first, ping, ack

    first, ping, ack = run(scenario())
    assert first["error_code"] == "INVALID_MESSAGE" and ping["error_code"] == "INVALID_MESSAGE"
    assert ack["type"] == "config_ack"


def test_two_hundred_concurrent_connections_each_get_their_own_answers(server):
    n = 200
    x = rows(n * 2, seed=37)

    async def one(i):
        async with connect(server) as ws:
            peer = Peer(ws)
            binary = i % 2 == 1
            await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name}}, binary)
            a = await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(x[2 * i])}}, binary)
            b = await peer.ask({"type": "predict_batch", "data": {"batch": [as_signals(x[2 * i + 1])]}}, binary)
            return values(a["data"]["predictions"]), values(b["data"]["predictions"][0])

    async def scenario():
        return await asyncio.gather(*(one(i) for i in range(n)))

    results = run(scenario())
    reference = expected(server.demo, x)
    got = np.array([r for pair in results for r in pair])
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_extreme_finite_inputs_get_an_answer_not_a_dropped_connection(server, binary):
    x = rows(1, seed=5)[0]
    x[0] = 1e308  # finite, but far outside anything the model has seen

    async def scenario():
        peer, _ = await configured(server, binary)
        reply = await peer.ask({"type": "predict", "id": 1, "data": {"boundary_signals": as_signals(x)}}, binary)
        alive = await peer.ask({"type": "ping"}, binary)
        await peer.ws.close()
        return reply, alive
    reply, alive = run(scenario())
    assert reply["id"] == 1 and alive["type"] == "pong"
    if reply["type"] == "error":
        assert reply["error_code"] == "PREDICTION_ERROR" and "non-finite" in reply["message"]
    else:
        assert all(np.isfinite(list(reply["data"]["predictions"].values())))
