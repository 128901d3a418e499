"""What calibration stores for the residual monitor in an ensemble's manifest: how each target's residual
behaves on normal data, the default alert thresholds, and the residual vector's normal spread."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SignalCalibration(BaseModel):
    """How one target's residual behaves on normal (validation) data."""

    lag: float = Field(ge=0.0, lt=1.0)  # first-order lag coefficient of the sensor behind the prediction
    residual_mean: float
    residual_std: float = Field(gt=0.0)
    step_std: float = Field(ge=0.0)  # std of the measured value's sample-to-sample change
    hold_samples: int = Field(1, ge=1)  # most consecutive samples with the same reading in normal operation
    # False: out of fold the twin explained too little of this target (models.twin.monitor.calibrate.twin_has_skill),
    # so the reading is watched against its normal level (residual_mean) and the prediction is not used
    follows_twin: bool = True


class AlertThresholds(BaseModel):
    """Detector settings of one target signal; every field may be overridden by a session's `config`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    drift_lambda: float = Field(0.05, gt=0.0, le=1.0)
    drift_threshold: float = Field(gt=0.0)
    spike_threshold: float = Field(gt=0.0)
    stuck_samples: int = Field(10, ge=2, le=1_000_000)
    stuck_ratio: float = Field(0.01, ge=0.0, le=1.0)
    missing_samples: int = Field(5, ge=1, le=1_000_000)
    clear_samples: int = Field(60, ge=1, le=1_000_000)  # the off-delay; calibration sets 3 / drift_lambda


class MultivariateCalibration(BaseModel):
    """The residual vector's normal spread: T² = e' P e of the drift EWMAs e of `signals`, alert beyond
    `threshold`."""

    signals: list[str]  # the targets in the statistic (those with enough calibration data), in P's order
    precision: list[list[float]]  # inverse of the shrunk covariance of the EWMA vector on normal data
    threshold: float = Field(gt=0.0)
    shrinkage: float  # weight of the covariance's diagonal in the shrunk estimate
    effective_samples: float  # the calibration run's worth in independent samples


class InputRange(BaseModel):
    """The range of one boundary signal in the data the twin was trained on."""

    low: float
    high: float


class InputLevel(BaseModel):
    """The normal level of one boundary signal (its mean and spread in the data the twin was trained on)
    and the limit of its drift EWMA, for `input_level`."""

    mean: float
    std: float = Field(gt=0.0)
    drift_lambda: float = Field(gt=0.0, le=1.0)
    drift_threshold: float = Field(gt=0.0)  # in spreads, like a target's
    clear_samples: int = Field(ge=1)


class MonitorCalibration(BaseModel):
    """Per-target residual calibration and default alert thresholds, stored in the ensemble manifest."""

    signals: dict[str, SignalCalibration]
    thresholds: dict[str, AlertThresholds]
    validation_samples: int
    threshold_margin: float
    alarm_budget: float = 0.0  # calibration alarms per 10k samples allowed to each detector
    multivariate: MultivariateCalibration | None = None  # None: single target, or calibrated before it existed
    baseline_halflife: float | None = None  # samples; None: residual means fixed at calibration (see ResidualMonitor)
    # boundary signals' training ranges, watched by `envelope` (models.twin.monitor.envelope); empty: not watched
    inputs: dict[str, InputRange] = {}
    envelope_margin: float = Field(0.1, ge=0.0)  # share of a range's span an input may pass its edges by
    # boundary signals' normal levels, watched by `input_level` (models.twin.monitor.input_level); empty: not watched
    input_levels: dict[str, InputLevel] = {}
