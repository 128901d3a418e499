"""Calibrating the residual monitor (models.twin.monitor.residual_monitor) from normal data.

Training calls `calibrate` on held-out predictions; an existing ensemble can be recalibrated from any
CSV of normal operation:

    python -m models.twin.monitor.calibrate --ensemble data/model_repository/Ensemble_X --csv normal.csv

Rules (the reasoning and the measurements behind them: docs/early-warning.md, docs/benchmarks.md):
- each threshold is `margin` times the level its detector reaches on the normal data, within a small
  alarm budget, and at least a parametric limit that allows for a spread estimated from few effective
  samples of the statistic itself (Student's t for a drift EWMA, the Phase-II F limit for T²);
- drift thresholds are read off each time block's EWMA standardised by the other blocks; the EWMA's
  memory follows the run's length (`drift_weight`); an alert clears after three memories;
- a target the twin explains too little of is watched against its normal level (`twin_has_skill`);
- each signal's normal hold (repeated readings) is recorded for `stuck`, and the multivariate alert gets
  a shrunk covariance of the EWMA vector;
- each boundary input's normal level gets a drift limit by the same rule (`input_levels`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist

import numpy as np

from models.twin.dataset import load_csv
from models.twin.ensemble import Ensemble
from models.twin.manifest import MANIFEST_FILE
from models.twin.monitor.calibration import (
    AlertThresholds,
    InputLevel,
    MonitorCalibration,
    MultivariateCalibration,
    SignalCalibration,
)
from models.twin.sensor_lag import first_order_lag, fitted_lags

DEFAULT_MARGIN = 1.1  # thresholds over the level the calibration data reach
MIN_DRIFT_LAMBDA, MAX_DRIFT_LAMBDA = 0.05, 0.25  # the EWMA weights of SPC practice (Montgomery)
MEMORIES_PER_BLOCK = 16  # EWMA memories in each calibration block, so its held-out level is not start-up
DEFAULT_ALARM_BUDGET = 0.1  # alarms per 10,000 calibration samples each detector of each target may raise
MIN_SPIKE_SD = 5.0  # a spike threshold never goes below this many residual standard deviations (before the margin)
TARGET_EXCEEDANCE = 1e-4  # per-sample probability of normal data crossing a parametric threshold
CONFIDENCE = 0.95  # of the upper bound on a statistic's spread from a short calibration run
DEFAULT_STUCK_SAMPLES = 10
CALIBRATION_BLOCKS = 5  # time blocks for the multivariate alert's held-out T²
SKILL_ALPHA = 0.05  # significance level at which a twin must beat a target's normal level to be followed
MIN_TWIN_R2 = 0.5  # share of a target's variance a twin must explain to be followed (its residual then
#                   has at most 0.71 of the reading's spread)
MIN_VECTOR_SAMPLES = 30  # effective samples (for its spread) a residual's EWMA needs to join the multivariate alert
DEFAULT_BASELINE_HALFLIFE = 150.0  # samples: how fast the monitor follows slow normal change (Baseline)


def drift_weight(samples: int) -> float:
    """The drift EWMA's weight for a calibration run of `samples`: MEMORIES_PER_BLOCK memories (1 / lambda
    samples) in each of its CALIBRATION_BLOCKS blocks, within [MIN_DRIFT_LAMBDA, MAX_DRIFT_LAMBDA]. SKAB's
    400-sample runs get 0.2; the demo plant's 300,000 validation samples 0.05."""
    return float(np.clip(CALIBRATION_BLOCKS * MEMORIES_PER_BLOCK / samples, MIN_DRIFT_LAMBDA, MAX_DRIFT_LAMBDA))


def ewma(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponentially weighted moving average from 0, as the live drift detector computes it."""
    out = np.empty_like(values, dtype=np.float64)
    state = np.zeros(values.shape[1:])
    for i, row in enumerate(values):
        state = state + weight * (row - state)
        out[i] = state
    return out


def drift_alarms(level: np.ndarray, threshold: float) -> int:
    """How many drift alarms a |EWMA| series [n] opens: above `threshold`, cleared under half of it."""
    state = np.where(level > threshold, 1, np.where(level < threshold / 2, -1, 0))
    changes = state[state != 0]
    if len(changes) == 0:
        return 0
    return int(((changes[1:] == 1) & (changes[:-1] == -1)).sum() + (changes[0] == 1))


def spike_alarms(size: np.ndarray, threshold: float) -> int:
    """How many isolated spikes a |z| series [n] holds: above `threshold`, both neighbours under half."""
    calm = size < threshold / 2
    return int(((size[1:-1] > threshold) & calm[:-2] & calm[2:]).sum())


OFF_DELAY_MEMORIES = 3  # SKAB's 2.6-hour normal run: off-delays of 1, 2, 3 and 5 memories open 18, 16, 14, 14 alerts


def off_delay(drift_lambda: float) -> int:
    """Calm samples before an alert clears: OFF_DELAY_MEMORIES times the drift EWMA's memory (1 / lambda
    samples) - the shortest off-delay that opens no more alerts on a long normal run than a longer one
    (no chattering), so an alert ends soon after the plant has recovered."""
    return max(1, round(OFF_DELAY_MEMORIES / drift_lambda))


def lowest_threshold(alarms, statistic: np.ndarray, allowed: int) -> float:
    """The lowest threshold (to 0.1%) at which `alarms(statistic, threshold)` stays within `allowed`."""
    low, high = 0.0, float(statistic.max()) * 1.001 + 1e-12
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if alarms(statistic, middle) <= allowed else (middle, high)
    return high


MIN_CALIBRATION_SAMPLES = 100


def effective_samples(series: np.ndarray, spread: bool = False) -> float:
    """How many independent samples a series [n] is worth, from its lag-1 autocorrelation rho (AR(1)):
    for estimating its mean n (1 - rho) / (1 + rho); with `spread`, for estimating its standard deviation
    (Bartlett) n (1 - rho²) / (1 + rho²)."""
    centred = series - series.mean()
    denominator = float((centred * centred).sum())
    rho = float((centred[1:] * centred[:-1]).sum()) / denominator if denominator > 0 else 0.0
    rho = min(max(rho, 0.0), 0.999)
    if spread:
        rho = rho * rho
    return max(2.0, len(series) * (1.0 - rho) / (1.0 + rho))


def spread_samples(series: np.ndarray) -> float:
    """How many independent samples a series [n] is worth for estimating its standard deviation, from its
    whole autocorrelation (Bartlett): n / (1 + 2 sum rho_k²), summed while rho_k is positive. For a smooth
    series (an input wandering slowly, then averaged) the lag-1 count of `effective_samples` assumes AR(1)
    and sees far fewer samples than there are."""
    n = len(series)
    centred = series - series.mean()
    spectrum = np.fft.rfft(centred, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acf[0] <= 0:
        return 2.0
    acf = acf / acf[0]
    ended = np.flatnonzero(acf[1:] <= 0.0)
    positive = acf[1:1 + (int(ended[0]) if len(ended) else n - 1)]
    return max(2.0, n / (1.0 + 2.0 * float((positive ** 2).sum())))


def spread_bound(n_eff: float, confidence: float = CONFIDENCE) -> float:
    """Factor on a standard deviation estimated from `n_eff` samples giving its upper `confidence` bound
    (chi-square, Wilson-Hilferty approximation)."""
    k = max(n_eff - 1.0, 1.0)
    z = NormalDist().inv_cdf(1.0 - confidence)
    lower_quantile = k * max(1.0 - 2.0 / (9.0 * k) + z * np.sqrt(2.0 / (9.0 * k)), 0.05) ** 3
    return float(np.sqrt(k / lower_quantile))


def t_quantile(p: float, dof: float) -> float:
    """The p-quantile of Student's t with `dof` degrees of freedom (Cornish-Fisher expansion; within 2%
    from 5 degrees of freedom at p = 1 - 5e-5)."""
    z = NormalDist().inv_cdf(p)
    nu = max(dof, 3.0)
    return (z + (z ** 3 + z) / (4 * nu) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * nu ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * nu ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * nu ** 4))


def f_quantile(p: float, dof1: float, dof2: float) -> float:
    """The p-quantile of an F(dof1, dof2) distribution (Paulson's normal approximation; a few percent
    high for small dof2)."""
    z = NormalDist().inv_cdf(p)
    a1, a2 = 2.0 / (9.0 * dof1), 2.0 / (9.0 * max(dof2, 4.0))
    a, b, c = (1 - a2) ** 2 - z * z * a2, -2 * (1 - a2) * (1 - a1), (1 - a1) ** 2 - z * z * a1
    return float(((-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)) ** 3)


def phase2_t2_limit(p: float, dims: float, n: float) -> float:
    """Hotelling's T² limit for a new observation when mean and covariance were estimated from `n`
    samples in `dims` dimensions: dims (n + 1)(n - 1) / (n (n - dims)) F(dims, n - dims)."""
    n = max(n, dims + 4.0)
    return dims * (n + 1) * (n - 1) / (n * (n - dims)) * f_quantile(p, dims, n - dims)


def longest_unchanged_run(values: np.ndarray) -> np.ndarray:
    """Per column of [n, k]: the most consecutive samples with exactly the same reading."""
    longest = np.ones(values.shape[1], dtype=int)
    current = np.ones(values.shape[1], dtype=int)
    for same in values[1:] == values[:-1]:
        current = np.where(same, current + 1, 1)
        longest = np.maximum(longest, current)
    return longest


def held_out_blocks(n: int):
    """(block, the other rows) index pairs of CALIBRATION_BLOCKS consecutive time blocks of n samples: a
    statistic on each block with parameters from the others shows how it behaves on unseen normal data."""
    rows = np.arange(n)
    for block in np.array_split(rows, CALIBRATION_BLOCKS):
        yield block, np.setdiff1d(rows, block)


def _shrunk_precision(smoothed: np.ndarray, shrink: float) -> np.ndarray:
    """Inverse of the EWMA vectors' covariance (about zero), shrunk towards its diagonal."""
    covariance = smoothed.T @ smoothed / len(smoothed)
    covariance = (1.0 - shrink) * covariance + shrink * np.diag(np.diag(covariance))
    return np.linalg.inv(covariance + 1e-9 * np.eye(len(covariance)))


def _t2(smoothed: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jk,ik->i", smoothed, precision, smoothed)


def multivariate_calibration(z: np.ndarray, targets: list[str], drift_lambda: float, margin: float,
                             allowed: int) -> MultivariateCalibration | None:
    """Hotelling T² of the EWMA of the standardised residual vector z [n, k], over the signals whose
    EWMA is worth at least MIN_VECTOR_SAMPLES independent samples for estimating its spread (a wandering
    residual cannot have its covariance estimated from this run; its own drift limit is wide instead).
    Covariance from the EWMA series itself (so autocorrelation is in it), shrunk towards its diagonal by
    k / n_eff (n_eff: the smallest of those counts). The threshold comes from T² on each of
    CALIBRATION_BLOCKS time blocks computed with the covariance of the other blocks: the larger of its
    budgeted empirical level and the Phase-II limit for n_eff samples on the scale of a chi-square fitted
    to its mean and variance (Box). None with fewer than two such signals."""
    every = ewma(z, drift_lambda)
    n_eff_each = np.array([effective_samples(every[:, j], spread=True) for j in range(z.shape[1])])
    used = np.flatnonzero(n_eff_each >= MIN_VECTOR_SAMPLES)
    if len(used) < 2:
        return None
    k, n_eff = len(used), float(n_eff_each[used].min())
    smoothed = every[:, used]
    shrink = float(np.clip(k / n_eff, 0.05, 0.9))
    # T² of each time block with the covariance of the others: how T² behaves on normal data the
    # covariance was not estimated from (a plant that wanders between blocks shows here)
    held_out_t2 = np.empty(len(z))
    for block, rest in held_out_blocks(len(z)):
        held_out_t2[block] = _t2(smoothed[block], _shrunk_precision(smoothed[rest], shrink))
    mean, var = float(held_out_t2.mean()), float(max(held_out_t2.var(), 1e-12))
    scale, dof = var / (2.0 * mean), 2.0 * mean * mean / var  # T² ~ scale * chi²(dof) (Box)
    parametric = scale * phase2_t2_limit(1.0 - TARGET_EXCEEDANCE, dof, n_eff)
    threshold = margin * max(parametric, lowest_threshold(drift_alarms, held_out_t2, allowed))
    precision = _shrunk_precision(smoothed, shrink)
    return MultivariateCalibration(signals=[targets[j] for j in used], precision=precision.tolist(),
                                   threshold=threshold, shrinkage=shrink, effective_samples=n_eff)


def twin_has_skill(lagged: np.ndarray, actual: np.ndarray, alpha: float = SKILL_ALPHA) -> np.ndarray:
    """Per target of [n, k]: whether the (lagged) predictions explain a significant share of the readings'
    variance, R² = 1 - var(residual) / var(reading) on these rows the twin did not train on, against the
    F test for one explanatory series at level `alpha` with the reading's effective sample count (an
    autocorrelated reading is worth fewer samples, and a wandering one is easy to fit by chance)."""
    skill = np.zeros(actual.shape[1], dtype=bool)
    for j in range(actual.shape[1]):
        spread = float(actual[:, j].var())
        if spread <= 0.0:
            continue
        r2 = 1.0 - float((actual[:, j] - lagged[:, j]).var()) / spread
        dof = effective_samples(actual[:, j]) - 2.0
        critical = t_quantile(1.0 - alpha / 2.0, dof) ** 2  # F(1, dof) = t(dof)²
        skill[j] = r2 >= MIN_TWIN_R2 and r2 > critical / (critical + max(dof, 1.0))
    return skill


def held_out_ewma(residual: np.ndarray, drift_lambda: float) -> np.ndarray:
    """The drift EWMA of residuals [n, k] as live monitoring sees it: each of CALIBRATION_BLOCKS time blocks
    standardised with the mean and spread of the other blocks, so a plant that wanders between blocks
    widens the drift threshold (as the multivariate alert's held-out T² does)."""
    out = np.empty_like(residual, dtype=np.float64)
    for block, rest in held_out_blocks(len(residual)):
        others = residual[rest]
        out[block] = ewma((residual[block] - others.mean(axis=0)) / np.maximum(others.std(axis=0), 1e-12), drift_lambda)
    return out


def drift_limit(smoothed: np.ndarray, margin: float, allowed: int, n_eff: float | None = None) -> float:
    """The drift threshold for one signal's held-out drift EWMA series [n] (`held_out_ewma`): `margin` times
    the larger of the level its normal data reach within `allowed` alarms and Student's t limit for a
    spread estimated from `n_eff` samples (default: the EWMA's lag-1 count, `effective_samples`)."""
    n_eff = effective_samples(smoothed, spread=True) if n_eff is None else n_eff
    limit = t_quantile(1.0 - TARGET_EXCEEDANCE / 2, n_eff - 1) * np.sqrt(1 + 1 / n_eff) * spread_bound(n_eff)
    return margin * max(limit * float(np.sqrt((smoothed ** 2).mean())),
                        lowest_threshold(drift_alarms, np.abs(smoothed), allowed))


def calibrate(targets: list[str], predictions: np.ndarray, actual: np.ndarray, margin: float = DEFAULT_MARGIN,
              drift_lambda: float | None = None, lags: np.ndarray | None = None,
              alarm_budget: float = DEFAULT_ALARM_BUDGET,
              baseline_halflife: float | None = DEFAULT_BASELINE_HALFLIFE) -> MonitorCalibration:
    """Residual scale and thresholds per target from time-ordered normal data [n, n_target].

    `drift_lambda`: the drift EWMA's weight; None chooses it from the run's length (`drift_weight`).
    Each threshold is `margin` times the lowest level at which its detector raises at most `alarm_budget`
    alarms per 10,000 of these samples (with little data: none at all). A twin's rare large errors then
    set no threshold alone. `lags`: the sensor lag per target learned in training; None fits them here.
    """
    if len(predictions) < MIN_CALIBRATION_SAMPLES:
        raise ValueError(f"{len(predictions)} samples are too few to calibrate the monitor "
                         f"(need >= {MIN_CALIBRATION_SAMPLES})")
    drift_lambda = drift_weight(len(predictions)) if drift_lambda is None else drift_lambda
    best = fitted_lags(predictions, actual) if lags is None else np.asarray(lags, dtype=np.float64)
    lagged = first_order_lag(predictions, best)
    follows = twin_has_skill(lagged, actual)
    residual = actual - np.where(follows, lagged, 0.0)
    mean, std = residual.mean(axis=0), np.maximum(residual.std(axis=0), 1e-12)
    z = (residual - mean) / std
    allowed = int(alarm_budget * len(z) / 10_000)
    smoothed = held_out_ewma(residual, drift_lambda)
    spike, drift = [], []
    for j in range(len(targets)):
        # each limit allows for its statistic's spread having been estimated from this run: the residual's
        # for spikes, the drift EWMA's (worth far fewer independent samples, one per few memories) for drift
        bound = spread_bound(effective_samples(z[:, j], spread=True))
        spike.append(margin * max(MIN_SPIKE_SD * bound, lowest_threshold(spike_alarms, np.abs(z[:, j]), allowed)))
        drift.append(drift_limit(smoothed[:, j], margin, allowed))
    step_std = np.diff(actual, axis=0).std(axis=0)
    held = longest_unchanged_run(actual)
    return MonitorCalibration(
        signals={t: SignalCalibration(lag=float(best[j]), residual_mean=float(mean[j]), residual_std=float(std[j]),
                                      step_std=float(step_std[j]), hold_samples=int(held[j]),
                                      follows_twin=bool(follows[j]))
                 for j, t in enumerate(targets)},
        thresholds={t: AlertThresholds(drift_lambda=drift_lambda, drift_threshold=float(drift[j]),
                                       spike_threshold=float(spike[j]),
                                       stuck_samples=max(DEFAULT_STUCK_SAMPLES, 2 * int(held[j]) + 1),
                                       clear_samples=off_delay(drift_lambda))
                    for j, t in enumerate(targets)},
        validation_samples=len(predictions), threshold_margin=margin, alarm_budget=alarm_budget,
        multivariate=multivariate_calibration(z, targets, drift_lambda, margin, allowed),
        baseline_halflife=baseline_halflife,
    )


def input_levels(boundary: list[str], values: np.ndarray, margin: float = DEFAULT_MARGIN,
                 alarm_budget: float = DEFAULT_ALARM_BUDGET) -> dict[str, InputLevel]:
    """Each boundary signal's normal level and drift limit from time-ordered normal data [n, n_boundary]
    (NaN left out), calibrated as a target's drift is: the EWMA's weight from the run's length, the
    threshold from each time block standardised by the others, the small-sample allowance from the EWMA's
    whole autocorrelation (`spread_samples`: inputs wander smoothly). Signals with fewer than
    MIN_CALIBRATION_SAMPLES readings, or that never changed, are left out (`envelope` still watches a
    constant input's range)."""
    levels = {}
    for b, name in enumerate(boundary):
        seen = values[:, b][np.isfinite(values[:, b])]
        if len(seen) < MIN_CALIBRATION_SAMPLES or float(seen.std()) <= 0.0:
            continue
        weight = drift_weight(len(seen))
        smoothed = held_out_ewma(seen[:, None], weight)[:, 0]
        limit = drift_limit(smoothed, margin, int(alarm_budget * len(seen) / 10_000), spread_samples(smoothed))
        levels[name] = InputLevel(mean=float(seen.mean()), std=float(seen.std()), drift_lambda=weight,
                                  drift_threshold=limit, clear_samples=off_delay(weight))
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibrate an ensemble's residual monitor from normal data.")
    parser.add_argument("--ensemble", type=Path, required=True, help="ensemble folder")
    parser.add_argument("--csv", type=Path, required=True, help="normal operation with boundary and target columns")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--drift-lambda", type=float, default=None,
                        help="the drift EWMA's weight (default: from the CSV's length, 0.05 to 0.25)")
    parser.add_argument("--alarm-budget", type=float, default=DEFAULT_ALARM_BUDGET,
                        help="calibration alarms per 10,000 samples each detector may raise")
    args = parser.parse_args()
    ensemble = Ensemble(args.ensemble)
    manifest = ensemble.manifest
    table = load_csv(args.csv, manifest.boundary_signals, manifest.target_signals)
    ranges = manifest.monitor.inputs if manifest.monitor is not None else {}  # the training data's, kept
    manifest.monitor = calibrate(manifest.target_signals, ensemble.predict(table.boundary), table.target,
                                 args.margin, args.drift_lambda, manifest.lags(), args.alarm_budget)
    manifest.monitor.inputs = ranges
    manifest.monitor.input_levels = input_levels(manifest.boundary_signals, table.boundary, args.margin,
                                                 args.alarm_budget)  # this normal operation's
    (args.ensemble / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    for t, th in manifest.monitor.thresholds.items():
        signal = manifest.monitor.signals[t]
        print(f"  {t:28s} {'twin' if signal.follows_twin else 'level'}  lag {signal.lag:.2f}  "
              f"drift > {th.drift_threshold:.2f}  spike > {th.spike_threshold:.2f}")


if __name__ == "__main__":
    main()
