"""Wire schemas of the digital-twin stream (PROTOCOL.md section 1): requests, replies, error codes.

Only the ingress imports this module: everything past it works on numpy arrays and plain values.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BATCH = 1000  # hard upper bound of `batch_size`, as in the original
DEFAULT_BATCH_SIZE = 100
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class ErrorCode:
    """Stable `error_code` values; the first block is the original service's, the rest are new."""

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
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


class WireError(Exception):
    """A request the server answers with an `error` frame; the connection stays open."""

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}

    def to_message(self) -> dict:
        return {"type": "error", "error_code": self.code, "message": self.message, "details": self.details}


class ConfigData(BaseModel):
    """`config` data. `session_id` (an addition) resumes a session kept after a disconnect."""

    model_config = ConfigDict(extra="ignore", strict=True)

    ensemble_name: str = Field(min_length=1, max_length=200)
    mode: Literal["single", "batch"] = "single"
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH)
    manual_boost_signals: dict[str, bool] = {}
    include_metadata: bool = True
    session_id: str | None = Field(None, pattern=SESSION_ID_PATTERN)


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
    row = []
    for name in names:
        v = values[name]
        if type(v) not in (int, float) or not math.isfinite(v):
            raise WireError(ErrorCode.INVALID_SIGNAL_VALUE, f"`{where}.{name}` must be a finite number",
                            {"signal": name, "value": repr(v)[:64]})
        row.append(float(v))
    return row


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
    rows = []
    for i, values in enumerate(batch):
        rows.append(signal_row(values, names, f"batch[{i}]"))
    timestamps = data.get("timestamps")
    if timestamps is not None:
        if not isinstance(timestamps, list) or len(timestamps) != len(batch):
            raise WireError(ErrorCode.INVALID_MESSAGE, "`timestamps` must be a list as long as `batch`")
        timestamps = [timestamp_text(t) for t in timestamps]
    return np.asarray(rows, dtype=np.float64), timestamps


def timestamp_text(value: Any) -> str:
    """A client timestamp (string or number) as text; the server's UTC time when absent."""
    if value is None:
        return now_iso()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WireError(ErrorCode.INVALID_MESSAGE, "`timestamp` must be a string or a number")
    return str(value)[:64]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def config_ack(session_id: str, info: dict, config: ConfigData, boost: list[str], resumed: bool) -> dict:
    """`config_ack`, with the original's keys kept and the signal lists added."""
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
            "mode": config.mode,
            "batch_size": config.batch_size,
        },
    }


def prediction(targets: list[str], values: np.ndarray, boost: list[str], latency_ms: float, timestamp: str,
               include_metadata: bool) -> dict:
    data: dict[str, Any] = {"predictions": dict(zip(targets, values.tolist())), "timestamp": timestamp}
    if include_metadata:
        data["signals_used_boost"] = boost
        data["latency_ms"] = latency_ms
    return {"type": "prediction", "status": "success", "data": data}


def prediction_batch(targets: list[str], values: np.ndarray, boost: list[str], latency_ms: float,
                     include_metadata: bool) -> dict:
    data: dict[str, Any] = {"predictions": [dict(zip(targets, row)) for row in values.tolist()], "count": len(values)}
    if include_metadata:
        data["signals_used_boost"] = boost
        data["latency_ms"] = latency_ms
    return {"type": "prediction_batch", "status": "success", "data": data}
