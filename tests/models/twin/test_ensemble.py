"""Training, export and the committed demo ensemble's accuracy."""

import numpy as np
import pytest
import torch

from models.twin.dataset import SignalTable, r2_per_column
from models.twin.ensemble import Ensemble
from models.twin.graph import load_graph
from models.twin.plant import BOUNDARY_SIGNALS, LAG_SAMPLES, TARGET_SIGNALS, simulate, steady_state
from models.twin.repository import EnsembleNotFound, ModelRepository
from models.twin.sensor_lag import first_order_lag
from models.twin.train import train_ensemble


def _assert_onnx_matches_torch(ensemble: Ensemble, boundary: np.ndarray):
    graph = load_graph(ensemble.folder, ensemble.manifest)
    scaled = ensemble.boundary_scaler.transform(boundary)
    onnx_stage1, onnx_residual = ensemble.run_scaled(scaled)
    with torch.inference_mode():
        torch_stage1, torch_residual = (t.numpy() for t in graph(torch.from_numpy(scaled).float()))
    assert np.abs(onnx_stage1 - torch_stage1).max() < 1e-4
    assert np.abs(onnx_residual - torch_residual).max() < 1e-4


@pytest.fixture(scope="module")
def small_ensemble(tmp_path_factory):
    data = simulate(1200, seed=11)
    table = SignalTable(data.boundary, data.target, data.timestamps)
    folder = train_ensemble(table, BOUNDARY_SIGNALS, TARGET_SIGNALS, tmp_path_factory.mktemp("repo"), "Small",
                            epochs=2, boost_epochs=1, d_model=32, num_layers=1, nhead=4, boost_d_model=16,
                            boost_layers=1, batch_size=128)
    return Ensemble(folder)


def test_training_writes_a_complete_ensemble_folder(small_ensemble):
    folder = small_ensemble.folder
    assert folder.name.startswith("Ensemble_Small_") and len(folder.name.split("_")[-1]) == 6
    for name in ("manifest.json", "scalers.json", "ensemble.onnx", "stage1.pt", "boost.pt"):
        assert (folder / name).is_file(), name
    m = small_ensemble.manifest
    assert m.boundary_signals == BOUNDARY_SIGNALS and m.target_signals == TARGET_SIGNALS
    assert set(m.metrics) == set(TARGET_SIGNALS)
    assert set(m.sensor_lag) == set(TARGET_SIGNALS) and all(0.0 <= a < 1.0 for a in m.sensor_lag.values())
    assert [m.monitor.signals[t].lag for t in TARGET_SIGNALS] == [m.sensor_lag[t] for t in TARGET_SIGNALS]
    data = simulate(1200, seed=11)  # the training data: each input's range and normal level are its
    assert list(m.monitor.inputs) == list(m.monitor.input_levels) == BOUNDARY_SIGNALS
    speed = BOUNDARY_SIGNALS.index("Speed_boundary_1")
    assert m.monitor.input_levels["Speed_boundary_1"].mean == pytest.approx(data.boundary[:, speed].mean())
    assert m.monitor.inputs["Speed_boundary_1"].high == pytest.approx(data.boundary[:, speed].max())
    for target, metrics in m.metrics.items():
        assert metrics.boost_used == (target in m.boost_signals)
        assert metrics.boost_used == (metrics.delta_r2 > m.delta_r2_threshold)


def test_small_ensemble_onnx_matches_pytorch(small_ensemble):
    assert small_ensemble.manifest.boost_config["kind"] == "mlp"  # the default boost sees Stage 1's prediction
    _assert_onnx_matches_torch(small_ensemble, simulate(257, seed=2).boundary)


def test_a_new_boost_on_a_kept_stage1(small_ensemble, tmp_path):
    source = small_ensemble.manifest
    data = simulate(1200, seed=12, excitation=1.5)
    table = SignalTable(data.boundary, data.target, data.timestamps)
    folder = train_ensemble(table, BOUNDARY_SIGNALS, TARGET_SIGNALS, tmp_path, "Reboost", boost_epochs=2,
                            boost="sst", boost_d_model=16, boost_layers=1, nhead=4, batch_size=128,
                            stage1_from=small_ensemble.folder)
    reboosted = Ensemble(folder)
    m = reboosted.manifest
    assert m.training["stage1_from"] == small_ensemble.name and m.training["epochs"] == 0
    assert m.sensor_lag == source.sensor_lag and m.stage1_config == source.stage1_config
    assert m.boost_config["kind"] == "sst"
    x = small_ensemble.boundary_scaler.transform(simulate(50, seed=13).boundary)
    np.testing.assert_allclose(reboosted.run_scaled(x)[0], small_ensemble.run_scaled(x)[0], atol=1e-5)
    assert not np.allclose(reboosted.run_scaled(x)[1], small_ensemble.run_scaled(x)[1])
    _assert_onnx_matches_torch(reboosted, simulate(65, seed=14).boundary)
    with pytest.raises(ValueError, match="other signals"):
        train_ensemble(table, BOUNDARY_SIGNALS, TARGET_SIGNALS[:-1], tmp_path, "Mismatch",
                       stage1_from=small_ensemble.folder)


def test_boost_mask_changes_only_boosted_columns(small_ensemble):
    x = simulate(64, seed=9).boundary
    off = small_ensemble.predict(x, np.zeros(len(TARGET_SIGNALS), bool))
    on = small_ensemble.predict(x, np.ones(len(TARGET_SIGNALS), bool))
    per_row = np.zeros((64, len(TARGET_SIGNALS)), bool)
    per_row[::2, 0] = True
    mixed = small_ensemble.predict(x, per_row)
    np.testing.assert_allclose(mixed[::2, 0], on[::2, 0])
    np.testing.assert_allclose(mixed[1::2], off[1::2])
    mask = small_ensemble.boost_mask({TARGET_SIGNALS[1]: True, TARGET_SIGNALS[0]: False})
    assert mask[1] and not mask[0]


def test_committed_ensemble_is_accurate_on_held_out_data(demo_repository, demo_ensemble_name):
    ensemble = Ensemble(demo_repository.path(demo_ensemble_name))
    held_out = simulate(20000, seed=2024)  # the committed ensemble was trained on seeds 1 and 21
    lags = ensemble.manifest.lags()
    np.testing.assert_allclose(lags, 1.0 - 1.0 / LAG_SAMPLES, atol=0.02)  # it learned the plant's sensor lags

    def as_measured(boost: np.ndarray | None) -> np.ndarray:
        return first_order_lag(ensemble.predict(held_out.boundary, boost), lags)

    r2_stage1 = r2_per_column(held_out.target, as_measured(np.zeros(len(TARGET_SIGNALS), bool)))
    r2_ensemble = r2_per_column(held_out.target, as_measured(None))
    assert (r2_ensemble >= 0.99).all(), dict(zip(TARGET_SIGNALS, r2_ensemble))
    assert (r2_ensemble >= r2_stage1).all(), dict(zip(TARGET_SIGNALS, r2_ensemble - r2_stage1))
    # its residual is the sensors' own noise (what a perfect twin would leave) ...
    noise = held_out.target - first_order_lag(steady_state(held_out.boundary), 1.0 - 1.0 / LAG_SAMPLES)
    residual = (held_out.target - as_measured(None)).std(axis=0)
    assert (residual <= 1.1 * noise.std(axis=0)).all(), dict(zip(TARGET_SIGNALS, residual / noise.std(axis=0)))
    # ... also at the rare operating points: its own error stays under the noise in 99.9% of samples
    twin_error = np.abs(ensemble.predict(held_out.boundary) - steady_state(held_out.boundary))
    tail = np.quantile(twin_error, 0.999, axis=0) / noise.std(axis=0)
    assert (tail < 1.0).all(), dict(zip(TARGET_SIGNALS, tail))


def test_committed_ensemble_onnx_matches_pytorch(demo_repository, demo_ensemble_name):
    _assert_onnx_matches_torch(Ensemble(demo_repository.path(demo_ensemble_name)), simulate(300, seed=8).boundary)


@pytest.mark.parametrize(
    "name", ["../etc", "Ensemble_../x", "Ensemble_a/../../b", "", "Ensemble_missing_20200101_000000", 42]
)
def test_repository_rejects_unknown_and_escaping_names(demo_repository: ModelRepository, name):
    with pytest.raises(EnsembleNotFound):
        demo_repository.path(name)
