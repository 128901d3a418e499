"""Sensor lag: removing it inverts applying it, the lag is recovered from data, training stores it, and the
calibration's alarm budget counts alarms the way the live detectors raise them."""

import numpy as np

from models.twin.monitor.calibrate import drift_alarms, lowest_threshold, spike_alarms
from models.twin.plant import LAG_SAMPLES, simulate, steady_state
from models.twin.sensor_lag import first_order_lag, fitted_lags, remove_lag


def test_remove_lag_inverts_first_order_lag():
    steady = np.random.default_rng(0).normal(size=(500, 3))
    lags = np.array([0.0, 0.5, 0.9])
    np.testing.assert_allclose(remove_lag(first_order_lag(steady, lags), lags), steady, atol=1e-9)


def test_fitted_lags_recover_the_plant_sensors():
    data = simulate(8000, seed=3)
    fitted = fitted_lags(steady_state(data.boundary), data.target)
    np.testing.assert_allclose(fitted, 1.0 - 1.0 / LAG_SAMPLES, atol=0.02)


def test_removing_the_fitted_lag_leaves_the_steady_state_plus_noise():
    data = simulate(8000, seed=4)
    steady = steady_state(data.boundary)
    lags = fitted_lags(steady, data.target)
    smeared = (data.target - steady).std(axis=0)
    recovered = (remove_lag(data.target, lags) - steady)[1:]
    assert abs(recovered.mean(axis=0)).max() < 0.05 * smeared.max()  # unbiased, only noisier
    # what a static twin cannot learn - the lag's smear, correlated with the operating point - is gone
    corr = [abs(np.corrcoef(recovered[:, j], steady[1:, j])[0, 1]) for j in range(3)]
    assert max(corr) < 0.05, corr


def test_drift_alarms_count_episodes_with_hysteresis():
    level = np.array([0, 3, 3, 1.4, 3, 0.5, 0.2, 3, 0])  # dips to 1.4 (above half of 2) do not clear
    assert drift_alarms(level, 2.0) == 2
    assert drift_alarms(level, 3.5) == 0


def test_spike_alarms_count_only_isolated_outliers():
    size = np.array([0, 9, 0, 0, 9, 9, 0, 0, 7, 0])
    assert spike_alarms(size, 5.0) == 2  # the pair at 4-5 is no spike


def test_lowest_threshold_respects_the_allowed_alarms():
    level = np.array([0, 5, 0, 0, 3, 0, 0, 2, 0])
    assert abs(lowest_threshold(drift_alarms, level, 0) - 5.0) < 0.01
    assert abs(lowest_threshold(drift_alarms, level, 1) - 3.0) < 0.01
