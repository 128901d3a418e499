"""History exports: CSV and JSON hold every value exactly (shortest round-trip text), empty / null where a
value is missing, whatever the part size they are streamed in."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np

from serve_app.twin.history import history_csv, history_csv_parts, history_json, history_json_parts
from serve_app.twin.history_log import HistoryChunk
from tests.support.history_chunks import counting_chunk, mixed_chunks


def test_csv_holds_every_value_exactly_and_blanks_what_is_missing():
    parts = mixed_chunks()
    table = list(csv.DictReader(io.StringIO(history_csv(parts).decode())))
    assert list(table[0]) == ["timestamp", "latency_ms", "boundary_a", "boundary_b", "prediction_y", "prediction_z",
                              "actual_y", "actual_z", "residual_y", "residual_z"]
    assert [r["timestamp"] for r in table] == parts[0].timestamps + parts[1].timestamps
    plain, measured = table[:5], table[5:]
    np.testing.assert_array_equal([[float(r["boundary_a"]), float(r["boundary_b"])] for r in plain], parts[0].boundary)
    np.testing.assert_array_equal([float(r["latency_ms"]) for r in measured], parts[1].latency_ms)
    assert all(r["boundary_b"] == "" for r in measured) and all(r["actual_y"] == "" for r in plain)
    np.testing.assert_array_equal([[float(r["prediction_y"]), float(r["prediction_z"])] for r in measured],
                                  parts[1].predictions)
    actual = [[float(r["actual_y"]), float(r["actual_z"]) if r["actual_z"] else np.nan] for r in measured]
    np.testing.assert_array_equal(actual, parts[1].actual)
    residual = [[float(r["residual_y"]), float(r["residual_z"]) if r["residual_z"] else np.nan] for r in measured]
    np.testing.assert_array_equal(residual, parts[1].actual - parts[1].predictions)


def test_streamed_parts_join_to_the_same_csv():
    whole = history_csv(mixed_chunks())
    parts = list(history_csv_parts(mixed_chunks(), part_rows=3))
    assert len(parts) == 1 + 2 + 3 and b"".join(parts) == whole


def test_json_holds_every_value_exactly_and_nulls_what_is_missing():
    parts = mixed_chunks()
    target_only = HistoryChunk(["t12"], np.array([0.5]), (), np.zeros((1, 0)), ("y",), np.array([[2.0]]),
                               np.array([[np.inf]]))
    document = json.loads(history_json("s1", [*parts, target_only], {"alerts": [{"kind": "drift"}]}))
    assert document["session_id"] == "s1" and document["alerts"] == [{"kind": "drift"}]
    samples = document["samples"]
    assert [s["timestamp"] for s in samples] == parts[0].timestamps + parts[1].timestamps + ["t12"]
    assert [list(s) for s in samples[4:6]] == [["timestamp", "latency_ms", "boundary", "predictions"],
                                               ["timestamp", "latency_ms", "boundary", "predictions", "actual"]]
    np.testing.assert_array_equal([[s["boundary"]["a"], s["boundary"]["b"]] for s in samples[:5]], parts[0].boundary)
    np.testing.assert_array_equal([s["latency_ms"] for s in samples[5:12]], parts[1].latency_ms)
    np.testing.assert_array_equal([[s["predictions"]["y"], s["predictions"]["z"]] for s in samples[5:12]],
                                  parts[1].predictions)
    actual = [[s["actual"]["y"], np.nan if s["actual"]["z"] is None else s["actual"]["z"]] for s in samples[5:12]]
    np.testing.assert_array_equal(actual, parts[1].actual)
    assert samples[12] == {"timestamp": "t12", "latency_ms": 0.5, "boundary": {}, "predictions": {"y": 2.0},
                           "actual": {"y": None}}  # not finite: null


def test_streamed_json_parts_join_to_the_same_document():
    whole = history_json("s1", mixed_chunks())
    parts = list(history_json_parts("s1", mixed_chunks(), part_rows=3))
    assert len(parts) == 1 + 2 + 3 + 1 and b"".join(parts) == whole
    assert json.loads(history_json("s1", []))["samples"] == []


def test_a_live_sessions_small_chunks_are_rendered_together_with_actual_only_where_sent():
    small = [replace(counting_chunk(i, 1), actual=np.array([[7.0]])) if i % 2 else counting_chunk(i, 1)
             for i in range(6)]  # one chunk per flush, measured values in every other message
    parts = list(history_json_parts("s1", small))
    assert len(parts) == 3  # opening, one part for all six samples, end
    samples = json.loads(b"".join(parts))["samples"]
    assert [s.get("actual", "absent") for s in samples] == ["absent", {"y": 7.0}] * 3
    assert [s["predictions"]["y"] for s in samples] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    table = list(csv.DictReader(io.StringIO(history_csv(small).decode())))
    assert [r["actual_y"] for r in table] == ["", "7", "", "7", "", "7"]
    assert [r["residual_y"] for r in table] == ["", "-3", "", "-23", "", "-43"]
