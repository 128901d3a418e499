import numpy as np
import pytest

from models.twin.dataset import load_csv
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate, steady_state, write_csv


def test_simulation_is_reproducible_and_seed_dependent():
    a, b, c = simulate(500, seed=3), simulate(500, seed=3), simulate(500, seed=4)
    np.testing.assert_array_equal(a.boundary, b.boundary)
    np.testing.assert_array_equal(a.target, b.target)
    assert not np.allclose(a.boundary, c.boundary)
    assert a.boundary.shape == (500, len(BOUNDARY_SIGNALS)) and a.target.shape == (500, len(TARGET_SIGNALS))


def test_physics_holds_energy_and_pressure_direction():
    data = simulate(3000, seed=5)
    ideal = steady_state(data.boundary)
    t_hot_in, t_cold_in = data.boundary[:, 0], data.boundary[:, 1]
    t_hot_out, duty, p_hot_out = ideal[:, 0], ideal[:, 2], ideal[:, 3]
    assert (t_hot_out < t_hot_in).all() and (t_hot_out > t_cold_in).all()
    assert (duty > 0).all()
    assert (p_hot_out < data.boundary[:, 5]).all()
    # targets are noisy, lagged versions of the steady state, not copies of it
    assert 0 < np.abs(data.target - ideal).mean() < 0.1 * data.target.std(axis=0).max()


def test_csv_round_trip_with_and_without_timestamp(tmp_path):
    data = simulate(50, seed=1)
    path = tmp_path / "plant.csv"
    write_csv(data, path)
    table = load_csv(path, BOUNDARY_SIGNALS, TARGET_SIGNALS)
    np.testing.assert_allclose(table.boundary, data.boundary, rtol=1e-5)
    assert table.timestamps == data.timestamps
    # drop the timestamp column: still loads
    lines = path.read_text().splitlines()
    (tmp_path / "no_ts.csv").write_text("\n".join(",".join(line.split(",")[1:]) for line in lines))
    assert load_csv(tmp_path / "no_ts.csv", BOUNDARY_SIGNALS, TARGET_SIGNALS).timestamps is None


def test_injected_faults_change_only_their_signals_and_window():
    from models.twin.plant import Fault

    faults = (Fault("drift", 1000, 1500, "Temperature_target_1", magnitude=2.0, ramp=50),
              Fault("stuck", 200, 300, "Pressure_target_1"),
              Fault("dropout", 400, 420, "Power_target_2"),
              Fault("spike", 600, 700, "Temperature_target_2", magnitude=10.0),
              Fault("leak", 1800, 1900, magnitude=0.3, ramp=1),
              Fault("fouling", 2200, 2400, magnitude=0.4, ramp=1))
    clean, faulty = simulate(2600, seed=3), simulate(2600, seed=3, faults=faults)
    diff = faulty.target - clean.target
    j = {name: TARGET_SIGNALS.index(name) for name in TARGET_SIGNALS}
    np.testing.assert_allclose(diff[1049:1500, j["Temperature_target_1"]], 2.0)  # ramped up, held
    assert (diff[:1000, j["Temperature_target_1"]] == 0).all() and (
        diff[1500:1800, j["Temperature_target_1"]] == 0
    ).all()
    assert np.ptp(faulty.target[200:300, j["Pressure_target_1"]]) == 0
    assert np.isnan(faulty.target[400:420, j["Power_target_2"]]).all() and not np.isnan(faulty.target[420:, :]).any()
    assert np.count_nonzero(diff[600:700, j["Temperature_target_2"]]) == 2  # a spike every 50 samples
    assert (diff[1810:1900, j["Pressure_target_2"]] < -0.25).all()  # leak: lower cold-side outlet pressure
    assert (diff[2210:2400, j["Temperature_target_1"]] > 0.5).all()  # fouling: hot outlet stays hotter
    assert faults[5].expected_alerts() == [("Temperature_target_1", "drift"), ("Temperature_target_2", "drift"),
                                           ("Power_target_1", "drift")]


def test_excitation_widens_and_quickens_the_boundary_signals():
    normal, wide = simulate(20000, seed=4), simulate(20000, seed=4, excitation=2.0)
    spread = wide.boundary[:, :3].std(axis=0) / normal.boundary[:, :3].std(axis=0)  # unclipped temperatures
    assert ((spread > 1.6) & (spread < 2.5)).all(), spread
    step = np.abs(np.diff(wide.boundary[:, :3], axis=0)).mean(axis=0) / np.abs(
        np.diff(normal.boundary[:, :3], axis=0)
    ).mean(axis=0)
    assert (step > 2.2).all(), step  # wider and faster: each step moves ~2 * sqrt(2) times as far
    with pytest.raises(ValueError):
        simulate(10, excitation=0.0)
