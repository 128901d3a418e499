"""Recalibration on an operator's word: a window accepted as the new normal, and proposals from the
operation a monitor judged alert-free, on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from models.twin.monitor.calibrate import calibrate, input_levels
from models.twin.monitor.recalibration import (
    MIN_ACCEPT_SAMPLES,
    PROPOSAL_MIN_SAMPLES,
    alert_free,
    rebaselined,
    recalibration_proposal,
)

TARGETS = ["a", "b"]


def normal(n: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, actual): a twin that predicts the readings up to noise of `spread`."""
    rng = np.random.default_rng(seed)
    predictions = rng.normal(10.0, 10.0, size=(n, 2))
    return predictions, predictions + rng.normal(0.0, spread, size=(n, 2))


@pytest.fixture(scope="module")
def calibration():
    predictions, actual = normal(2000, seed=1)
    calibrated = calibrate(TARGETS, predictions, actual, lags=np.zeros(2), baseline_halflife=None)
    calibrated.input_levels = input_levels(["u"], predictions[:, :1])  # one boundary input watched for its level
    return calibrated


def stamps(n: int, start: int = 0) -> list[str]:
    return [str(start + i) for i in range(n)]


def test_a_window_at_a_new_level_becomes_the_normal_level(calibration):
    predictions, actual = normal(200, seed=2, spread=2.0)
    actual[:, 0] += 5.0  # a reads 5 units higher now, b is noisier
    accepted = rebaselined(calibration, TARGETS, predictions, actual)
    assert accepted.signals["a"].residual_mean == pytest.approx(5.0, abs=0.4)
    assert accepted.signals["b"].residual_std == pytest.approx(2.0, rel=0.15)  # wider: taken
    calm = rebaselined(calibration, TARGETS, *normal(200, seed=3, spread=0.1))
    assert calm.signals["a"].residual_std == calibration.signals["a"].residual_std  # narrower: kept
    assert accepted.thresholds == calibration.thresholds


def test_a_window_with_too_few_measured_samples_is_refused(calibration):
    predictions, actual = normal(MIN_ACCEPT_SAMPLES + 5, seed=4)
    actual[:10, 1] = np.nan
    with pytest.raises(ValueError, match="b has 25 measured samples"):
        rebaselined(calibration, TARGETS, predictions, actual)


def test_alert_free_rows_are_those_the_monitor_in_force_raises_nothing_on(calibration):
    predictions, actual = normal(1500, seed=5)
    actual[600:900, 0] += 8.0  # a fault: the drift alert stands over it (and its off-delay)
    actual[100, 1] = np.nan  # not fully measured
    runs = [(predictions[:700], actual[:700], stamps(700), None),
            (predictions[700:], actual[700:], stamps(800, 700), None)]
    keep = alert_free(calibration, TARGETS, [], runs)
    assert keep.shape == (1500,) and not keep[100]
    assert not keep[620:900].any()  # flagged across the two pieces: the alert opened in the first
    assert keep[:550].sum() == 549 and keep[1100:].all()  # clear after the fault and the off-delay


def test_a_proposal_follows_the_spread_of_alert_free_operation(calibration):
    predictions, actual = normal(PROPOSAL_MIN_SAMPLES, seed=6, spread=3.0)  # the plant is noisier than at commissioning
    proposed, compared = recalibration_proposal(calibration, TARGETS, predictions, actual)
    assert proposed.signals["a"].residual_std == pytest.approx(3.0, rel=0.1)
    assert proposed.threshold_margin == calibration.threshold_margin and proposed.inputs == calibration.inputs
    assert proposed.input_levels == calibration.input_levels and "u" in proposed.input_levels
    for target in TARGETS:
        now = calibration.thresholds[target].drift_threshold
        assert compared[target]["drift_threshold"]["now"] == pytest.approx(now, abs=1e-4)
        assert compared[target]["drift_threshold"]["proposed"] > 0
    with pytest.raises(ValueError, match="needs 1000"):
        recalibration_proposal(calibration, TARGETS, predictions[:999], actual[:999])
