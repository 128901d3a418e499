"""The ingress's shard flushes join each session's consecutive history chunks without reordering events."""

import numpy as np

from serve_app.twin.history_log import HistoryChunk
from serve_app.twin.session_shard import Event
from serve_app.twin.sessions import _joined_rows


def _chunk(t: int, measured: bool = False) -> HistoryChunk:
    return HistoryChunk([str(t)], np.array([0.5]), ("b",), np.array([[float(t)]]), ("y",), np.array([[2.0 * t]]),
                        np.array([[1.0]]) if measured else None)


def test_consecutive_chunks_of_a_session_are_joined_in_order():
    events = [Event(*e) for e in [
        ("rows", "a", _chunk(1)), ("rows", "b", _chunk(2)), ("rows", "a", _chunk(3)), ("config", "a", {}),
        ("rows", "a", _chunk(4)), ("rows", "a", _chunk(5)), ("rows", "a", _chunk(6, measured=True)), ("close", "b")]]
    joined = _joined_rows(events)
    assert [(e[0], e[1], e[2].timestamps if e[0] == "rows" else None) for e in joined] == [
        ("rows", "a", ["1", "3"]), ("rows", "b", ["2"]), ("config", "a", None), ("rows", "a", ["4", "5"]),
        ("rows", "a", ["6"]), ("close", "b", None)]  # a config between chunks and measured values split them
    first = joined[0][2]
    np.testing.assert_array_equal(first.boundary[:, 0], [1.0, 3.0])
    np.testing.assert_array_equal(first.predictions[:, 0], [2.0, 6.0])
    assert first.actual is None and len(first.latency_ms) == 2
