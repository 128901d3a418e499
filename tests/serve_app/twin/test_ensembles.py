"""Twin predictions inside the ingress (`twin_inference: ingress`): the coalescer over LocalEnsembles
answers every caller with its own rows' predictions, as the ensemble would alone, in any interleaving."""

import asyncio
import shutil

import numpy as np
import pytest

from models.twin.ensemble import Ensemble, RowBatch
from models.twin.plant import TARGET_SIGNALS, simulate
from models.twin.repository import EnsembleNotFound
from serve_app.twin.coalescer import PredictionCoalescer
from serve_app.twin.ensembles import LocalEnsembles


@pytest.fixture()
def repository(tmp_path, demo_repository, demo_ensemble_name):
    shutil.copytree(demo_repository.path(demo_ensemble_name), tmp_path / demo_ensemble_name)
    shutil.copytree(demo_repository.path(demo_ensemble_name), tmp_path / "Ensemble_Copy_20260101_000000")
    return tmp_path


def counting_coalescer(repository, calls: list[int]) -> PredictionCoalescer:
    """One call at a time, 256 rows at most, over LocalEnsembles; the rows of each call go to `calls`."""
    local = LocalEnsembles(repository)

    async def counted(name, rows):
        calls.append(len(rows))
        return await local.predict(name, rows)
    return PredictionCoalescer(counted, max_rows=256, wait_s=0.0, max_calls=1)


def test_concurrent_callers_get_their_own_rows(repository, demo_ensemble_name):
    ensemble = Ensemble(repository / demo_ensemble_name)
    data = simulate(620, seed=12).boundary
    sizes = [1, 7, 1, 64, 3, 1, 200, 1, 300, 23]  # 300: more than a call's rows, split across calls
    starts = np.cumsum([0, *sizes[:-1]])
    masks = [np.broadcast_to(np.arange(len(TARGET_SIGNALS)) % 2 == i % 2, (n, len(TARGET_SIGNALS)))
             for i, n in enumerate(sizes)]
    calls: list[int] = []

    async def run():
        coalescer = counting_coalescer(repository, calls)
        return await asyncio.gather(*(coalescer.predict(demo_ensemble_name, RowBatch(data[s:s + n], m))
                                      for s, n, m in zip(starts, sizes, masks)))

    results = asyncio.run(run())
    for s, n, m, out in zip(starts, sizes, masks, results):
        np.testing.assert_allclose(out, ensemble.predict(data[s:s + n], m), rtol=1e-5, atol=1e-5)
    assert len(calls) < len(sizes)  # coalesced
    assert all(n <= 256 for n in calls)  # within the row limit, the 300-row message included


def test_groups_split_by_ensemble_and_errors_reach_only_their_callers(repository, demo_ensemble_name):
    rows = RowBatch(simulate(4, seed=3).boundary, np.zeros((4, len(TARGET_SIGNALS)), bool))

    async def run():
        local = LocalEnsembles(repository, capacity=1)
        coalescer = PredictionCoalescer(local.predict, max_rows=2048, wait_s=0.0)
        return await asyncio.gather(coalescer.predict(demo_ensemble_name, rows),
                                    coalescer.predict("Ensemble_Missing_20260101_000000", rows),
                                    coalescer.predict("Ensemble_Copy_20260101_000000", rows),
                                    return_exceptions=True), local

    (first, missing, copy), local = asyncio.run(run())
    assert isinstance(missing, EnsembleNotFound)
    np.testing.assert_allclose(first, copy)  # same weights under two names, both answered
    assert local.loaded == ["Ensemble_Copy_20260101_000000"]  # capacity 1: the least recently used went


def test_calls_in_flight_never_exceed_the_limit_across_ensembles(repository, demo_ensemble_name):
    rows = RowBatch(simulate(2, seed=5).boundary, np.zeros((2, len(TARGET_SIGNALS)), bool))
    names = [demo_ensemble_name, "Ensemble_Copy_20260101_000000"] * 6
    running, most = 0, 0

    async def run():
        local = LocalEnsembles(repository)

        async def tracked(name, batch):
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await asyncio.sleep(0.01)
                return await local.predict(name, batch)
            finally:
                running -= 1

        coalescer = PredictionCoalescer(tracked, max_rows=2048, wait_s=0.0, max_calls=1)
        return await asyncio.gather(*(coalescer.predict(n, rows) for n in names))

    results = asyncio.run(run())
    assert most == 1  # two ensembles in one group still make one call at a time
    for out in results:
        np.testing.assert_allclose(out, results[0], rtol=1e-5, atol=1e-5)


def test_a_large_message_does_not_hold_up_the_small_ones(repository, demo_ensemble_name):
    big = RowBatch(simulate(1000, seed=6).boundary, np.zeros((1000, len(TARGET_SIGNALS)), bool))
    small = RowBatch(simulate(1, seed=7).boundary, np.zeros((1, len(TARGET_SIGNALS)), bool))
    calls: list[int] = []
    answered: list[str] = []

    async def run():
        coalescer = counting_coalescer(repository, calls)

        async def ask(label, rows):
            out = await coalescer.predict(demo_ensemble_name, rows)
            answered.append(label)
            return out

        first = asyncio.create_task(ask("big", big))
        await asyncio.sleep(0)  # the big message is pending first; a single sample arrives just after
        return await asyncio.gather(first, ask("small", small))

    big_out, small_out = asyncio.run(run())
    assert answered == ["small", "big"]  # the single sample went between the big message's pieces
    assert max(calls) <= 256 and sum(calls) == 1001
    ensemble = Ensemble(repository / demo_ensemble_name)
    np.testing.assert_allclose(big_out, ensemble.predict(big.boundary, big.boost_mask), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small_out, ensemble.predict(small.boundary, small.boost_mask), rtol=1e-5, atol=1e-5)


def test_a_single_sample_passes_a_bulk_call_still_running(repository, demo_ensemble_name):
    big = RowBatch(simulate(600, seed=8).boundary, np.zeros((600, len(TARGET_SIGNALS)), bool))
    small = RowBatch(simulate(1, seed=9).boundary, np.zeros((1, len(TARGET_SIGNALS)), bool))

    async def run():
        local = LocalEnsembles(repository)
        release = asyncio.Event()  # bulk calls finish only once the single sample is answered

        async def backend(name, rows):
            if len(rows) > 16:
                await release.wait()
            return await local.predict(name, rows)

        coalescer = PredictionCoalescer(backend, max_rows=256, wait_s=0.0, max_calls=1)
        bulk = asyncio.create_task(coalescer.predict(demo_ensemble_name, big))
        await asyncio.sleep(0.05)  # the big message's first piece is in the only call slot
        small_out = await asyncio.wait_for(coalescer.predict(demo_ensemble_name, small), 30)
        release.set()
        return await bulk, small_out

    big_out, small_out = asyncio.run(run())
    ensemble = Ensemble(repository / demo_ensemble_name)
    np.testing.assert_allclose(big_out, ensemble.predict(big.boundary, big.boost_mask), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small_out, ensemble.predict(small.boundary, small.boost_mask), rtol=1e-5, atol=1e-5)
