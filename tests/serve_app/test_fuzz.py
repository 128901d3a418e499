"""Fuzzing both WebSocket protocols with hypothesis: malformed, truncated, wrongly typed, oversized and
random messages. Every message gets exactly one reply (an `error`, or `pong` for a well-formed ping),
in order, and the server and a bystander session carry on unaffected."""

from __future__ import annotations

import asyncio
import base64
import json
import threading

import msgpack
import numpy as np
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS
from tests.support.server import ADMIN_TOKEN, MAX_MESSAGE_BYTES
from tests.support.wire import Peer, as_signals, connect, rows

EXAMPLES, MESSAGES_PER_EXAMPLE = 110, 50  # x2 protocols: 11,000 fuzzed messages

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12)
signal_names = st.sampled_from(BOUNDARY_SIGNALS + TARGET_SIGNALS + ["", "x", "Temperature_boundary_99"])
signal_objects = st.dictionaries(signal_names, json_values | st.floats(), max_size=12)
twin_data = st.fixed_dictionaries({}, optional={
    "ensemble_name": json_values | st.text(max_size=30), "mode": json_values | st.sampled_from(["single", "batch"]),
    "batch_size": json_values | st.integers(-5, 2000), "manual_boost_signals": json_values | signal_objects,
    "session_id": json_values | st.text(max_size=200), "alert_thresholds": json_values,
    "boundary_signals": json_values | signal_objects, "actual_signals": json_values | signal_objects,
    "batch": json_values | st.lists(signal_objects, max_size=4), "timestamps": json_values, "timestamp": json_values,
})
twin_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["config", "predict", "predict_batch", "ping", "Predict", ""]) | json_values},
    optional={"data": twin_data | json_values, "id": json_values})
kiosk_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["frame", "ping", "cart_remove", "checkout"]) | json_values},
    optional={"frame": json_values | st.text(max_size=40)
              | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
              | st.just("data:image/jpeg;base64,////") | st.just("data:text/plain,hello"),
              "index": json_values | st.integers(-3, 3), "timestamp": json_values})


def frames(messages) -> st.SearchStrategy:
    """A message as JSON text, msgpack bytes, truncated JSON, raw garbage, or oversized."""
    def truncated(message) -> str:
        text = json.dumps(message, allow_nan=True)
        return text[: max(1, len(text) // 2)]
    return st.one_of(
        messages.map(lambda m: json.dumps(m, allow_nan=True)),
        messages.map(lambda m: msgpack.packb(m, use_bin_type=True)),
        messages.map(truncated),
        st.text(max_size=60),
        st.binary(max_size=60),
        st.sampled_from(["[" * 50_000, "{" * 3, "null", "1e999", json.dumps({"type": "ping", "data": []})]),
        st.integers(1, 3).map(lambda k: "x" * (MAX_MESSAGE_BYTES + k)),
    )


class Fuzzer:
    """Connections kept open on a background event loop across hypothesis examples."""

    def __init__(self, server):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = server
        self.sent = 0

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    async def exchange(self, ws, frames_: list) -> list[dict]:
        """Send all frames, then read one reply per frame (in order; async kiosk events skipped)."""
        for frame in frames_:
            await ws.send(frame)
        replies = []
        while len(replies) < len(frames_):
            raw = await asyncio.wait_for(ws.recv(), 60)
            reply = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
            if reply.get("type") not in ("detections", "product_detected", "face_detected", "cart_updated"):
                replies.append(reply)
        self.sent += len(frames_)
        return replies

    def fuzz(self, ws, messages: st.SearchStrategy, reply_types: set[str]) -> None:
        """EXAMPLES hypothesis examples of MESSAGES_PER_EXAMPLE frames each; every reply of an allowed type,
        errors with a code and a message."""
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.lists(frames(messages), min_size=MESSAGES_PER_EXAMPLE, max_size=MESSAGES_PER_EXAMPLE))
        def run_examples(batch):
            replies = self.run(self.exchange(ws, batch))
            for frame, reply in zip(batch, replies):
                assert reply["type"] in reply_types, (frame, reply)
                if reply["type"] == "error":
                    assert isinstance(reply["error_code"], str) and isinstance(reply["message"], str)

        run_examples()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def fuzzer(server):
    f = Fuzzer(server)
    yield f
    f.close()


def test_fuzzed_twin_messages_all_get_error_replies(server, fuzzer):
    async def open_session():
        ws = await connect(server).__aenter__()
        ack = await Peer(ws).ask({"type": "config", "data": {"ensemble_name": server.demo.name, "mode": "batch"}})
        assert ack["type"] == "config_ack"
        return ws
    ws = fuzzer.run(open_session())

    fuzzer.fuzz(ws, twin_messages, {"error", "pong", "config_ack", "prediction", "prediction_batch"})
    x = rows(3, seed=99)  # the fuzzed connection itself still works
    reply = fuzzer.run(Peer(ws).ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x]}}))
    if reply["type"] == "error":  # a fuzzed config may have switched the mode or batch size: configure again
        fuzzer.run(Peer(ws).ask({"type": "config", "data": {"ensemble_name": server.demo.name, "mode": "batch"}}))
        reply = fuzzer.run(Peer(ws).ask({"type": "predict_batch", "data": {"batch": [as_signals(r) for r in x]}}))
    got = np.array([[p[t] for t in TARGET_SIGNALS] for p in reply["data"]["predictions"]])
    np.testing.assert_allclose(got, server.demo.predict(x), rtol=1e-5, atol=1e-5)
    fuzzer.run(ws.close())
    assert fuzzer.sent >= EXAMPLES * MESSAGES_PER_EXAMPLE


def test_fuzzed_kiosk_messages_all_get_replies_and_the_store_carries_on(server, fuzzer):
    async def open_kiosk():
        return await websockets.connect(f"{server.ws}/ws/fuzz-kiosk", max_size=2**24,
                                        additional_headers=server.headers(ADMIN_TOKEN))
    ws = fuzzer.run(open_kiosk())
    before = fuzzer.sent

    fuzzer.fuzz(ws, kiosk_messages, {"error", "pong", "frame_received"})
    pong = fuzzer.run(Peer(ws).ask({"type": "ping"}))
    fuzzer.run(ws.close())
    assert pong["type"] == "pong" and fuzzer.sent - before >= EXAMPLES * MESSAGES_PER_EXAMPLE
    assert server.api.get("/api/store/sessions/fuzz-kiosk").json()["cart"] == []
