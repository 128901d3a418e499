"""Smoke test of the benchmark harness against the test server: it runs, counts and reports (no timings asserted)."""

import asyncio

import pytest

from bench.ingress_costs import batch_validation, face_search
from bench.run_suite import wait_ingress_replicas_up
from bench.skab import Run, first_fault
from bench.skab_inputs import input_level_changes
from bench.store_load import frames, raw_detector, run_store
from bench.twin_load import _loopback_only, idle_sessions, run_load
from tests.support.paths import SKAB_FIXTURES
from tests.support.server import ADMIN_TOKEN


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("STREAMFORGE_TOKEN", ADMIN_TOKEN)  # the test server runs with auth on


def test_twin_load_counts_predictions(server):
    single = asyncio.run(run_load(server.ws, server.demo.name, 2, 1, False, 1.0))
    batch = asyncio.run(run_load(server.ws, server.demo.name, 1, 32, True, 1.0))
    assert single["predictions"] == single["messages"] > 0
    assert batch["predictions"] == 32 * batch["messages"] > 0
    assert set(single["latency_ms"]) == {"p50", "p95", "p99"}
    assert single["server_rss_mb"] > 0 and single["server_cpu_cores"] > 0  # the Ray server processes were found


def test_paced_twin_load_keeps_its_schedule(server):
    # 4 sessions offering 20 messages/s in all for 2.5 s: each starts 1 s after connecting, so ~30 messages
    paced = asyncio.run(run_load(server.ws, server.demo.name, 4, 1, False, 2.5, rate=20.0))
    assert paced["offered_per_s"] == 20.0
    assert 20 <= paced["messages"] <= 32, paced  # the schedule, not the server's speed, sets the count
    assert paced["predictions"] == paced["messages"]


def test_paced_runs_shorter_than_the_connect_allowance_are_refused():
    with pytest.raises(ValueError, match="paced run needs more than"):
        asyncio.run(run_load("ws://127.0.0.1:9", "Ensemble_X_20260101_000000", 4, 1, False, 1.0, rate=20.0))


def test_idle_sessions_and_store_load_report(server):
    idle = asyncio.run(idle_sessions(server.ws, server.demo.name, 5))
    assert idle["idle_sessions"] == 5 and idle["server_rss_after_mb"] > 0
    store = asyncio.run(run_store(server.ws, 1, 5.0, 2.0, frames(3)))
    assert store["sent"] >= 8 and 0 < store["processed"] <= store["sent"]
    assert store["processed"] + store["dropped"] <= store["sent"]


def test_store_kiosks_start_out_of_step_unless_aligned_with_fresh_phases_each_draw(server):
    # 2 kiosks at 4 fps, 2 draws of 1.2 s: out of step, each starts within its first 250 ms frame interval
    for aligned in (False, True):
        store = asyncio.run(run_store(server.ws, 2, 4.0, 2.4, frames(2), aligned=aligned, draws=2))
        assert store["sent"] == 20 and store["processed"] > 0, store
        first, second = store["phases_s"]
        if aligned:
            assert first == second == [0.0, 0.0]
        else:
            assert all(len(set(p)) == 2 and all(0 <= t < 0.25 for t in p) for p in (first, second)) and first != second


def test_raw_detector_reports_hot_paced_and_colliding_image_latency():
    raw = raw_detector(frames(2), repeats=1)
    assert raw["single_image_ms_p50"] > 0 and raw["single_image_at_10fps_ms_p50"] > 0 and raw["batch8_images_per_s"] > 0
    assert 0 < raw["two_at_once_at_10fps_ms"]["p50"] <= raw["two_at_once_at_10fps_ms"]["p95"]


def test_load_generators_refuse_non_loopback_targets():
    with pytest.raises(SystemExit):
        _loopback_only("ws://10.0.0.8:8000")


def test_haproxy_readiness_wait_returns_once_every_ingress_replica_is_up(server):
    wait_ingress_replicas_up(1, timeout_s=30)  # raises if HAProxy does not list the test server's replica as UP
    with pytest.raises(RuntimeError, match="2 ingress replicas"):  # the test server runs one: never all of 2
        wait_ingress_replicas_up(2, timeout_s=3)


def test_ingress_costs_time_both_validation_paths_and_both_face_searches():
    validation = batch_validation(rows=8, repeats=2)
    assert validation["rows"] == 8 and validation["whole_batch_ms"] > 0 and validation["row_by_row_ms"] > 0
    search = face_search(search_max_side=640, repeats=1)
    assert search["search_max_side"] == 640 and search["full_size_ms"] > 0 and search["capped_ms"] > 0


def test_gpu_check_measures_every_precision_and_batch_size_on_any_device():
    from bench.gpu_check import measure

    # the dry run of what a GPU node runs with --device cuda (small batches: half precision is slow on CPUs)
    result = measure("cpu", seconds=0.05, batches=(64, 256))
    assert result["device"] and set(result["precisions"]) == {"float32", "float16", "bfloat16"}
    for precision in result["precisions"].values():
        assert set(precision["rows_per_s"]) == {"64", "256"}
        assert all(v > 0 for v in precision["rows_per_s"].values())
    assert max(result["precisions"]["float32"]["max_abs_diff_vs_onnx"].values()) < 1e-3


def test_skab_inputs_watches_the_sensors_as_inputs_quiet_until_the_valve_closes():
    run = Run.read(SKAB_FIXTURES / "valve1-0.csv")  # the outlet valve closes around row 573
    start, end = first_fault(run)
    changes = input_level_changes(run)
    opened = [(row, signal, kind) for row, (signal, kind), is_opened in changes if is_opened]
    assert opened and all(start <= row < end and kind == "input_level" for row, _, kind in opened)
    assert opened[0][1] == "Volume Flow RateRMS"  # the flow falls when the valve closes
