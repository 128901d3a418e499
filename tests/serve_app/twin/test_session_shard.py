"""SessionShard logic without a cluster: bounded history, resume, expiry."""

import time

import numpy as np

from serve_app.twin.history import history_csv, history_records
from serve_app.settings import AppSettings
from serve_app.twin.session_shard import HistoryChunk, SessionShard


def chunk(start: int, n: int) -> HistoryChunk:
    idx = np.arange(start, start + n, dtype=float)
    return HistoryChunk([f"t{i}" for i in range(start, start + n)], np.full(n, 2.0), ("a", "b"),
                        np.stack([idx, -idx], 1), ("y",), idx[:, None] * 10)


def test_history_is_bounded_and_keeps_the_newest_samples():
    shard = SessionShard(AppSettings(history_limit=25, session_ttl_s=60))
    shard.open("s1", {"ensemble_name": "E", "mode": "single"}, resume=False)
    shard.apply([("rows", "s1", chunk(0, 10)), ("rows", "s1", chunk(10, 10)), ("rows", "s1", chunk(20, 12))])
    records = history_records(shard.history("s1"))
    assert [r["timestamp"] for r in records] == [f"t{i}" for i in range(7, 32)]
    summary = shard.summaries()[0]
    assert summary["predictions_count"] == 32 and summary["latency_sum_ms"] == 64.0 and summary["history_samples"] == 25
    assert history_csv(shard.history("s1")).splitlines()[:2] == ["timestamp,latency_ms,boundary_a,boundary_b,prediction_y",
                                                                 "t7,2.0,7.0,-7.0,70.0"]


def test_resume_only_within_ttl_after_disconnect():
    shard = SessionShard(AppSettings(history_limit=100, session_ttl_s=0.2))
    assert shard.open("s1", {}, resume=True) is None
    shard.open("s1", {"ensemble_name": "E"}, resume=False)
    shard.apply([("rows", "s1", chunk(0, 3)), ("close", "s1")])
    assert shard.summaries()[0]["connected"] is False
    assert shard.open("s1", {"ensemble_name": "F"}, resume=True)["predictions_count"] == 3
    shard.apply([("close", "s1")])
    time.sleep(0.3)
    assert shard.open("s1", {}, resume=True) is None and shard.summaries() == []


def test_events_for_unknown_sessions_are_ignored():
    shard = SessionShard(AppSettings(history_limit=10, session_ttl_s=60))
    shard.apply([("rows", "ghost", chunk(0, 2)), ("close", "ghost"), ("config", "ghost", {})])
    assert shard.summaries() == []


def test_a_restarted_shard_resumes_sessions_from_mongodb(server):
    """A new shard object on the same database stands for the actor Ray restarts after a crash."""
    first = SessionShard(AppSettings(history_limit=100, session_ttl_s=60), mongo_uri=server.mongo_uri, persist_interval_s=0.0,
                         counters_interval_s=0.0)
    first.open("persisted-1", {"ensemble_name": "E", "mode": "batch"}, resume=False)
    first.apply([("rows", "persisted-1", chunk(0, 7))])
    restarted = SessionShard(AppSettings(history_limit=100, session_ttl_s=60), mongo_uri=server.mongo_uri)
    summary = restarted.open("persisted-1", {"ensemble_name": "E", "mode": "single"}, resume=True)
    assert summary["predictions_count"] == 7 and summary["connected"] and summary["mode"] == "single"
    assert restarted.history("persisted-1") == []  # samples are not persisted, only the session
    assert restarted.open("never-opened", {"ensemble_name": "E"}, resume=True) is None


def test_persisted_sessions_expire_like_live_ones(server):
    shard = SessionShard(AppSettings(history_limit=10, session_ttl_s=0.2), mongo_uri=server.mongo_uri, persist_interval_s=0.0)
    shard.open("persisted-2", {"ensemble_name": "E"}, resume=False)
    shard.apply([("close", "persisted-2")])
    time.sleep(0.3)
    assert SessionShard(AppSettings(history_limit=10, session_ttl_s=0.2), mongo_uri=server.mongo_uri).open(
        "persisted-2", {"ensemble_name": "E"}, resume=True) is None
