"""SessionShard logic without a cluster: bounded history, resume, expiry."""

import time

from deployments.shared.mongo import connect
from serve_app.settings import AppSettings
from serve_app.twin.history import history_csv
from serve_app.twin.session_shard import SessionShard
from tests.support.history_chunks import counting_chunk, exported_samples


def test_history_is_bounded_and_keeps_the_newest_samples():
    shard = SessionShard(AppSettings(twin={"history_limit": 25, "session_ttl_s": 60}))
    shard.open("s1", {"ensemble_name": "E", "mode": "single"}, resume=False)
    shard.apply([("rows", "s1", counting_chunk(0, 10)), ("rows", "s1", counting_chunk(10, 10)),
                 ("rows", "s1", counting_chunk(20, 12))])
    records = exported_samples(shard.history("s1"))
    assert [r["timestamp"] for r in records] == [f"t{i}" for i in range(7, 32)]
    assert shard.span("s1") == ["t7", "t31"]
    summary = shard.summaries()[0]
    assert summary["predictions_count"] == 32 and summary["latency_sum_ms"] == 64.0 and summary["history_samples"] == 25
    assert history_csv(shard.history("s1")).decode().splitlines()[:2] == [
        '"timestamp","latency_ms","boundary_a","boundary_b","prediction_y"',
        '"t7",2,7,-7,70',
    ]


def test_resume_only_within_ttl_after_disconnect():
    shard = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 0.2}))
    assert shard.open("s1", {}, resume=True) is None and shard.span("s1") is None
    shard.open("s1", {"ensemble_name": "E"}, resume=False)
    assert shard.span("s1") == []
    shard.apply([("rows", "s1", counting_chunk(0, 3)), ("close", "s1")])
    assert shard.summaries()[0]["connected"] is False
    assert shard.open("s1", {"ensemble_name": "F"}, resume=True)["predictions_count"] == 3
    shard.apply([("close", "s1")])
    time.sleep(0.3)
    assert shard.open("s1", {}, resume=True) is None and shard.summaries() == []


def test_events_for_unknown_sessions_are_ignored():
    shard = SessionShard(AppSettings(twin={"history_limit": 10, "session_ttl_s": 60}))
    shard.apply([("rows", "ghost", counting_chunk(0, 2)), ("close", "ghost"), ("config", "ghost", {})])
    assert shard.summaries() == []


def test_a_restarted_shard_resumes_sessions_from_mongodb(server):
    """A new shard object on the same database stands for the actor Ray restarts after a crash."""
    first = SessionShard(
        AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}, sessions={"persist_interval_s": 0.0}),
        mongo_uri=server.mongo_uri,
    )
    first.open("persisted-1", {"ensemble_name": "E", "mode": "batch"}, resume=False)
    first.apply([("rows", "persisted-1", counting_chunk(0, 7))])
    restarted = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}), mongo_uri=server.mongo_uri)
    summary = restarted.open("persisted-1", {"ensemble_name": "E", "mode": "single"}, resume=True)
    assert summary["predictions_count"] == 7 and summary["connected"] and summary["mode"] == "single"
    assert [r["timestamp"] for r in exported_samples(restarted.history("persisted-1"))] == [f"t{i}" for i in range(7)]
    assert restarted.open("never-opened", {"ensemble_name": "E"}, resume=True) is None


def test_persisted_sessions_expire_like_live_ones(server):
    shard = SessionShard(
        AppSettings(twin={"history_limit": 10, "session_ttl_s": 0.2}, sessions={"persist_interval_s": 0.0}),
        mongo_uri=server.mongo_uri,
    )
    shard.open("persisted-2", {"ensemble_name": "E"}, resume=False)
    shard.apply([("close", "persisted-2")])
    time.sleep(0.3)
    assert SessionShard(AppSettings(twin={"history_limit": 10, "session_ttl_s": 0.2}), mongo_uri=server.mongo_uri).open(
        "persisted-2", {"ensemble_name": "E"}, resume=True) is None


def test_a_newer_connection_takes_the_session_over_and_the_older_close_does_not_end_it():
    shard = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}))
    shard.open("s1", {"ensemble_name": "E"}, resume=False, owner=("replica-a", "old"))
    assert shard.open("s1", {"ensemble_name": "E"}, resume=True, owner=("replica-b", "new"))["connected"]
    # the old connection's last rows still count; its close arrives after the takeover and is ignored
    assert shard.apply([("rows", "s1", counting_chunk(0, 4), "old"), ("close", "s1", None, "old")], "replica-a",
                       alive={}) == ["old"]  # replica-a learns that its connection lost the session
    shard.apply([("rows", "s1", counting_chunk(4, 2), "new")], "replica-b", alive={"s1": "new"})
    summary = shard.summaries()[0]
    assert summary["connected"] and summary["predictions_count"] == 6
    assert shard.apply([], "replica-a", alive={}) == []  # told once


def test_liveness_does_not_need_a_close_to_arrive(monkeypatch):
    shard = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}))
    shard.open("gone", {"ensemble_name": "E"}, resume=False, owner=("replica-a", "c1"))
    shard.open("kept", {"ensemble_name": "E"}, resume=False, owner=("replica-a", "c2"))
    shard.apply([], "replica-a", alive={"kept": "c2"})  # c1's close was lost: the replica no longer holds it
    assert {s["session_id"]: s["connected"] for s in shard.summaries()} == {"gone": False, "kept": True}
    shard.open("crashed", {"ensemble_name": "E"}, resume=False, owner=("replica-b", "c3"))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 11)  # replica-b silent for longer than LIVENESS_S
    shard.apply([], "replica-a", alive={"kept": "c2"})
    assert {s["session_id"]: s["connected"] for s in shard.summaries()} == {"gone": False, "kept": True,
                                                                          "crashed": False}


def test_reads_wait_for_every_live_replica_to_flush():
    shard = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}))
    shard.apply([], "replica-a", taken_at=100.0, alive={})
    shard.apply([], "replica-b", taken_at=105.0, alive={})
    assert shard.behind(101.0)  # replica-a may still hold events from before 101
    shard.apply([], "replica-a", taken_at=102.0, alive={})
    assert not shard.behind(101.0)


def test_settings_change_on_a_running_shard():
    shard = SessionShard(AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}))
    shard.configure(AppSettings(twin={"history_limit": 3, "session_ttl_s": 60}))
    shard.open("s1", {"ensemble_name": "E"}, resume=False)
    shard.apply([("rows", "s1", counting_chunk(0, 10))])
    assert shard.summaries()[0]["history_samples"] == 3


def test_a_restarted_shard_restores_a_session_on_its_first_event(server):
    settings = AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}, sessions={"persist_interval_s": 0.0})
    first = SessionShard(settings, mongo_uri=server.mongo_uri)
    first.open("persisted-3", {"ensemble_name": "E"}, resume=False, owner=("replica-a", "c1"))
    first.apply([("rows", "persisted-3", counting_chunk(0, 5), "c1")], "replica-a", alive={"persisted-3": "c1"})
    restarted = SessionShard(settings, mongo_uri=server.mongo_uri)  # the connection streams on
    restarted.apply([("rows", "persisted-3", counting_chunk(5, 3), "c1")], "replica-a", alive={"persisted-3": "c1"})
    summary = restarted.summaries()[0]
    assert summary["predictions_count"] == 8 and summary["connected"]
    assert [r["timestamp"] for r in exported_samples(restarted.history("persisted-3"))] == [f"t{i}" for i in range(8)]


def test_each_write_stores_one_document_per_session_and_trims_once_per_limit(server):
    settings = AppSettings(twin={"history_limit": 30, "session_ttl_s": 60}, sessions={"persist_interval_s": 0.0})
    shard = SessionShard(settings, mongo_uri=server.mongo_uri)
    history = connect(server.mongo_uri)["streamforge"].twin_history
    shard.open("columnar-1", {"ensemble_name": "E", "mode": "batch"}, resume=False)
    shard.apply([("rows", "columnar-1", counting_chunk(0, 4)), ("rows", "columnar-1", counting_chunk(4, 4)),
                 ("rows", "columnar-1", counting_chunk(8, 4))])  # three flushes, one write
    assert history.count_documents({"session_id": "columnar-1"}) == 1
    stored = []
    for start in range(12, 75, 9):  # one write each: the session passes 30 and 60 samples once each
        shard.apply([("rows", "columnar-1", counting_chunk(start, 9))])
        stored.append(sum(d["end"] - d["start"] for d in history.find({"session_id": "columnar-1"})))
    # never fewer than the limit once reached, never more than twice it, and trimmed at least once
    assert min(stored[1:]) >= 30 and max(stored) <= 60 and any(b < a for a, b in zip(stored, stored[1:])), stored
    restarted = SessionShard(AppSettings(twin={"history_limit": 30, "session_ttl_s": 60}), mongo_uri=server.mongo_uri)
    restarted.open("columnar-1", {"ensemble_name": "E"}, resume=True)
    assert [r["timestamp"] for r in exported_samples(restarted.history("columnar-1"))] == [
        f"t{i}" for i in range(45, 75)]


def test_rows_alone_leave_the_session_record_to_the_history_log_and_the_rest_is_written_at_once(server):
    settings = AppSettings(twin={"history_limit": 100, "session_ttl_s": 60}, sessions={"persist_interval_s": 0.0})
    records = connect(server.mongo_uri)["streamforge"].twin_sessions
    shard = SessionShard(settings, mongo_uri=server.mongo_uri)
    shard.open("records-1", {"ensemble_name": "E"}, resume=False)
    shard.apply([("rows", "records-1", counting_chunk(0, 5))])
    shard.apply([("rows", "records-1", counting_chunk(5, 4))])
    assert records.find_one({"session_id": "records-1"})["predictions_count"] == 0  # written at open only
    shard.apply([("rows", "records-1", counting_chunk(9, 2), "conn", ("r-9",)),
                 ("monitor", "records-1", {"samples": 11})])
    record = records.find_one({"session_id": "records-1"})
    assert record["request_ids"] == ["r-9"] and record["predictions_count"] == 11
    shard.apply([("rows", "records-1", counting_chunk(11, 3))])
    restarted = SessionShard(settings, mongo_uri=server.mongo_uri)
    resumed = restarted.open("records-1", {"ensemble_name": "E"}, resume=True)
    assert resumed["predictions_count"] == 14 and resumed["request_ids"] == ["r-9"]
    assert [r["timestamp"] for r in exported_samples(restarted.history("records-1"))] == [f"t{i}" for i in range(14)]
