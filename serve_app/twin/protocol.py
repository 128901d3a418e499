"""Wire schemas of the digital-twin stream (docs/protocol.md, part 1): requests, replies, error codes.

The twin connection and the twin HTTP routes use it; below them (session shards, models) work is done
on numpy arrays and plain values.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.twin.monitor.calibration import AlertThresholds, MonitorCalibration
from models.twin.monitor.events import AlertEvent
from models.twin.monitor.flood import FloodLimits
from serve_app.web.wire import SESSION_ID_PATTERN, TOO_MANY_CONNECTIONS, WireError, now_iso

MAX_BATCH = 1000  # hard upper bound of `batch_size` (docs/protocol.md)
DEFAULT_BATCH_SIZE = 100


class ErrorCode:
    """Stable `error_code` values; the first block is what existing clients know (docs/protocol.md), the rest
    are StreamForge's additions."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    MISSING_ENSEMBLE = "MISSING_ENSEMBLE"
    ENSEMBLE_NOT_FOUND = "ENSEMBLE_NOT_FOUND"
    MISSING_SIGNALS = "MISSING_SIGNALS"
    EMPTY_BATCH = "EMPTY_BATCH"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    PREDICTION_ERROR = "PREDICTION_ERROR"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    INVALID_JSON = "INVALID_JSON"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # additions
    INVALID_CONFIG = "INVALID_CONFIG"
    UNKNOWN_SIGNALS = "UNKNOWN_SIGNALS"
    INVALID_SIGNAL_VALUE = "INVALID_SIGNAL_VALUE"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_TAKEN_OVER = "SESSION_TAKEN_OVER"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_CONNECTIONS = TOO_MANY_CONNECTIONS


class ConfigData(BaseModel):
    """`config` data. `session_id` (an addition) resumes a session kept after a disconnect."""

    model_config = ConfigDict(extra="ignore", strict=True)

    ensemble_name: str = Field(min_length=1, max_length=200)
    mode: Literal["single", "batch"] = "single"
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH)
    manual_boost_signals: dict[str, bool] = {}
    include_metadata: bool = True
    session_id: str | None = Field(None, pattern=SESSION_ID_PATTERN)
    alert_thresholds: dict[str, dict[str, Any]] = {}  # {target signal or "*": {AlertThresholds field: value}}
    alert_flood: FloodLimits = FloodLimits()  # alarm-flood cap of the session (models.twin.monitor.flood)


class Envelope(BaseModel):
    """Every client message: `type`, optional `data` object, optional request `id` echoed in the reply."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: str = Field(max_length=64)
    data: dict[str, Any] = {}
    id: str | int | None = None


def pydantic_details(exc: ValidationError) -> dict:
    """Short, JSON-safe description of what failed validation."""
    return {"errors": [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()[:10]]}


def parse_envelope(message: Any) -> Envelope:
    if not isinstance(message, dict):
        raise WireError(ErrorCode.INVALID_MESSAGE, "a message must be an object with a `type` field")
    try:
        return Envelope.model_validate(message)
    except ValidationError as exc:
        raise WireError(ErrorCode.INVALID_MESSAGE, "malformed message envelope", pydantic_details(exc)) from None


def parse_config(data: dict) -> ConfigData:
    if not data.get("ensemble_name"):
        raise WireError(ErrorCode.MISSING_ENSEMBLE, "config needs `ensemble_name`")
    try:
        return ConfigData.model_validate(data)
    except ValidationError as exc:
        raise WireError(ErrorCode.INVALID_CONFIG, "invalid config", pydantic_details(exc)) from None


def signal_row(values: Any, names: list[str], where: str = "boundary_signals") -> list[float]:
    """Validate one {signal: number} object against the ensemble's boundary signals; ordered values."""
    if not isinstance(values, dict):
        raise WireError(ErrorCode.INVALID_MESSAGE, f"`{where}` must be an object of signal: number")
    missing = [n for n in names if n not in values]
    if missing:
        raise WireError(ErrorCode.MISSING_SIGNALS, f"missing signals in `{where}`", {"missing_signals": missing})
    if len(values) != len(names):
        unknown = [str(k) for k in values if k not in names][:50]
        raise WireError(ErrorCode.UNKNOWN_SIGNALS, f"unknown signals in `{where}`", {"unknown_signals": unknown})
    return [finite_value(values[name], f"{where}.{name}", name) for name in names]


_NUMBER_TYPES = frozenset((int, float))  # exactly: bool is an int subclass, and true/false are not numbers here
_NULLABLE_TYPES = _NUMBER_TYPES | {type(None)}


def finite_value(value: Any, where: str, signal: str, nullable: bool = False) -> float:
    """One signal value as a float (NaN for an allowed null); INVALID_SIGNAL_VALUE for anything else."""
    if nullable and value is None:
        return math.nan
    try:
        number = float(value) if type(value) in _NUMBER_TYPES else math.nan
    except OverflowError:  # an integer beyond the float range
        number = math.nan
    if not math.isfinite(number):
        raise WireError(ErrorCode.INVALID_SIGNAL_VALUE,
                        f"`{where}` must be a finite number" + (" or null" if nullable else ""),
                        {"signal": signal, "value": repr(value)[:64]})
    return number


def actual_row(values: Any, targets: list[str], where: str = "actual_signals") -> list[float]:
    """Validate one {target: number | null} object of measured values; NaN where a target is not measured."""
    if values is None:
        return [math.nan] * len(targets)
    if not isinstance(values, dict):
        raise WireError(ErrorCode.INVALID_MESSAGE, f"`{where}` must be an object of target signal: number")
    unknown = [str(k) for k in values if k not in targets][:50]
    if unknown:
        raise WireError(ErrorCode.UNKNOWN_SIGNALS, f"unknown target signals in `{where}`",
                        {"unknown_signals": unknown, "target_signals": targets})
    return [finite_value(values.get(name), f"{where}.{name}", name, nullable=True) for name in targets]


def batch_actuals(data: dict, targets: list[str], count: int) -> np.ndarray | None:
    """Optional `actual_signals` of `predict_batch`: a list as long as `batch` of objects (or nulls)."""
    actual = data.get("actual_signals")
    if actual is None:
        return None
    if not isinstance(actual, list) or len(actual) != count:
        raise WireError(ErrorCode.INVALID_MESSAGE, "`actual_signals` must be a list as long as `batch`")
    rows = _well_formed_actuals(actual, targets)
    if rows is None:  # find and name the first bad row and value
        rows = np.asarray([actual_row(v, targets, f"actual_signals[{i}]") for i, v in enumerate(actual)],
                          dtype=np.float64)
    return rows


def alert_overrides(calibration: MonitorCalibration | None, overrides: dict[str, dict[str, Any]],
                    targets: list[str]) -> dict[str, AlertThresholds]:
    """Per-target thresholds after a session's `alert_thresholds` ({target or "*": {field: value}})."""
    if not overrides:
        return {}
    if calibration is None:
        raise WireError(ErrorCode.INVALID_CONFIG, "this ensemble has no residual monitor calibration")
    unknown = [k for k in overrides if k != "*" and k not in targets]
    if unknown:
        raise WireError(ErrorCode.INVALID_CONFIG, "alert_thresholds names unknown target signals",
                        {"unknown_signals": unknown})
    resolved = {}
    for target in targets:
        fields = {**overrides.get("*", {}), **overrides.get(target, {})}
        if fields:
            try:
                resolved[target] = AlertThresholds.model_validate(
                    {**calibration.thresholds[target].model_dump(), **fields})
            except ValidationError as exc:
                raise WireError(ErrorCode.INVALID_CONFIG, f"invalid alert_thresholds for {target}",
                                pydantic_details(exc)) from None
    return resolved


def residuals(targets: list[str], values: np.ndarray) -> dict[str, float | None]:
    """{target: measured - predicted}, null where the target was not measured."""
    return residual_rows(targets, values[None, :])[0]


def residual_rows(targets: list[str], values: np.ndarray) -> list[dict[str, float | None]]:
    """residuals() of each row of [n, n_target] values."""
    return [dict(zip(targets, row)) for row in np.where(np.isnan(values), None, values).tolist()]


def alert_message(record: dict) -> dict:
    """The `alert` (opened) or `alert_cleared` push message of an alert record."""
    return {"type": "alert" if record["opened"] else "alert_cleared", "data": record}


def alert_record(event: AlertEvent, session_id: str, shelved: bool = False) -> dict:
    """An alert event as stored in the session history and MongoDB; `shelved`: held back from the client."""
    return {"session_id": session_id, "signal": event.signal, "kind": event.kind, "opened": event.opened,
            "score": round(event.score, 4), "threshold": round(event.threshold, 4),
            "first_sample": event.first_sample, "sample": event.sample, "contributors": event.contributors,
            "message": event.message, "created_at": now_iso(), "shelved": shelved}


def batch_rows(data: dict, names: list[str], limit: int) -> tuple[np.ndarray, list[str] | None]:
    """Validate `predict_batch` data: rows [n, len(names)] and optional per-row timestamps."""
    batch = data.get("batch")
    if not isinstance(batch, list):
        raise WireError(ErrorCode.INVALID_MESSAGE, "`batch` must be a list of signal objects")
    if not batch:
        raise WireError(ErrorCode.EMPTY_BATCH, "`batch` is empty")
    if len(batch) > limit:
        raise WireError(ErrorCode.BATCH_TOO_LARGE, f"batch of {len(batch)} exceeds the session's batch_size {limit}",
                        {"batch_size": len(batch), "max_batch_size": limit})
    rows = _well_formed_rows(batch, names)
    if rows is None:  # find and name the first bad row and value
        rows = np.asarray(
            [signal_row(values, names, f"batch[{i}]") for i, values in enumerate(batch)], dtype=np.float64
        )
    return rows, batch_timestamps(data, len(batch), "batch")


def batch_timestamps(data: dict, count: int, rows: str) -> list[str] | None:
    """Optional per-row `timestamps` of `predict_batch`: a list as long as the `rows` field."""
    timestamps = data.get("timestamps")
    if timestamps is None:
        return None
    if not isinstance(timestamps, list) or len(timestamps) != count:
        raise WireError(ErrorCode.INVALID_MESSAGE, f"`timestamps` must be a list as long as `{rows}`")
    return [timestamp_text(t) for t in timestamps]


def measured_inputs(actual: np.ndarray | None, where: str) -> np.ndarray:
    """The inputs of a twin of target signals only (no boundary signals): the measured targets, each
    predicted from the others; every row needs at least one measured value."""
    if actual is None:
        raise WireError(ErrorCode.MISSING_SIGNALS, f"this ensemble has no boundary signals: it predicts each target "
                        f"from the other targets' measured values, so `{where}` is required")
    empty = np.flatnonzero(np.isnan(actual).all(axis=1))
    if len(empty):
        raise WireError(ErrorCode.MISSING_SIGNALS, f"`{where}` needs at least one measured value per sample",
                        {"rows": empty[:20].tolist()})
    return actual


def target_only_batch(data: dict, targets: list[str], limit: int) -> tuple[np.ndarray, list[str] | None]:
    """Validate `predict_batch` data for a twin of target signals only: `actual_signals` is the batch
    (`batch`, if sent, holds empty objects); (measured values [n, n_target], timestamps)."""
    actual = data.get("actual_signals")
    if not isinstance(actual, list):
        raise WireError(ErrorCode.MISSING_SIGNALS, "this ensemble has no boundary signals: `actual_signals` (a list "
                        "of target signal objects) is the batch")
    if not actual:
        raise WireError(ErrorCode.EMPTY_BATCH, "`actual_signals` is empty")
    if len(actual) > limit:
        raise WireError(ErrorCode.BATCH_TOO_LARGE, f"batch of {len(actual)} exceeds the session's batch_size {limit}",
                        {"batch_size": len(actual), "max_batch_size": limit})
    batch = data.get("batch")
    if batch is not None and (not isinstance(batch, list) or any(row != {} for row in batch)):
        raise WireError(ErrorCode.UNKNOWN_SIGNALS, "this ensemble has no boundary signals: `batch` may only hold "
                        "empty objects", {"boundary_signals": []})
    return (measured_inputs(batch_actuals(data, targets, len(actual)), "actual_signals"),
            batch_timestamps(data, len(actual), "actual_signals"))


def _well_formed_rows(batch: list, names: list[str]) -> np.ndarray | None:
    """The batch as rows [n, len(names)] when every row has exactly these signals with finite numbers, checked
    a whole batch at a time (faster than row by row: bench.ingress_costs); None otherwise."""
    try:
        width = len(names)
        rows = [[values[name] for name in names] for values in batch if type(values) is dict and len(values) == width]
        if len(rows) != len(batch) or not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
            return None
        array = np.asarray(rows, dtype=np.float64)
    except (KeyError, OverflowError):  # a signal missing (or an unknown one instead); an int beyond float range
        return None
    return array if np.isfinite(array).all() else None


def _well_formed_actuals(actual: list, targets: list[str]) -> np.ndarray | None:
    """`actual_signals` as rows [n, len(targets)] (NaN where a target is not measured) when every row is an
    object of known targets with finite numbers or nulls, checked a whole batch at a time; None otherwise."""
    known = set(targets)
    if not all(type(values) is dict and values.keys() <= known for values in actual):
        return None
    flat = [values.get(name) for values in actual for name in targets]
    if not _NULLABLE_TYPES.issuperset(map(type, flat)):
        return None
    try:
        array = np.asarray(flat, dtype=np.float64).reshape(len(actual), len(targets))  # null -> NaN
    except OverflowError:  # an int beyond the float range
        return None
    if np.isinf(array).any() or np.count_nonzero(np.isnan(array)) != flat.count(None):  # NaN or inf sent
        return None
    return array


def timestamp_text(value: Any) -> str:
    """A client timestamp (string or number) as text; the server's UTC time when absent."""
    if value is None:
        return now_iso()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WireError(ErrorCode.INVALID_MESSAGE, "`timestamp` must be a string or a number")
    return str(value)[:64]



def config_ack(session_id: str, info: dict, config: ConfigData, boost: list[str], resumed: bool) -> dict:
    """`config_ack` with the keys existing clients read (docs/protocol.md) and the signal lists added."""
    return {
        "type": "config_ack",
        "status": "success",
        "message": f"{'resumed' if resumed else 'configured'} session with ensemble {info['ensemble_name']}",
        "session_id": session_id,
        "resumed": resumed,
        "ensemble_info": {
            "ensemble_name": info["ensemble_name"],
            "num_signals": len(info["target_signals"]),
            "signals_using_boost": len(boost),
            "boundary_signals": info["boundary_signals"],
            "target_signals": info["target_signals"],
            "boost_signals": boost,
            "monitoring": info.get("monitor") is not None,
            "mode": config.mode,
            "batch_size": config.batch_size,
        },
    }


def prediction(targets: list[str], values: np.ndarray, boost: list[str], latency_ms: float, timestamp: str,
               include_metadata: bool, residual: np.ndarray | None = None) -> dict:
    data: dict[str, Any] = {"predictions": dict(zip(targets, values.tolist())), "timestamp": timestamp}
    if residual is not None:
        data["residuals"] = residuals(targets, residual)
    if include_metadata:
        data["signals_used_boost"] = boost
        data["latency_ms"] = latency_ms
    return {"type": "prediction", "status": "success", "data": data}


def prediction_batch(targets: list[str], values: np.ndarray, boost: list[str], latency_ms: float,
                     include_metadata: bool, residual: np.ndarray | None = None) -> dict:
    data: dict[str, Any] = {"predictions": [dict(zip(targets, row)) for row in values.tolist()], "count": len(values)}
    if residual is not None:
        data["residuals"] = residual_rows(targets, residual)
    if include_metadata:
        data["signals_used_boost"] = boost
        data["latency_ms"] = latency_ms
    return {"type": "prediction_batch", "status": "success", "data": data}
