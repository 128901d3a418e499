"""Operator actions on the twin's alarm system (docs/protocol.md, "Operator actions"): shelve an alert,
accept a window of operation as the new normal, see and apply a recalibration proposal, roll the
calibration back. Admin only (every /api/admin/ route is); each action is recorded with who, when and
why (serve_app.twin.operator_actions)."""
# No `from __future__ import annotations`: FastAPI reads these signatures at import time.

import asyncio
import time
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from models.twin.monitor.calibration import MonitorCalibration
from models.twin.monitor.events import ALERT_KINDS
from models.twin.monitor.flood import plant_seconds
from models.twin.monitor.recalibration import (
    MIN_ACCEPT_SAMPLES,
    PROPOSAL_MIN_SAMPLES,
    alert_free,
    rebaselined,
    recalibration_proposal,
)
from serve_app.twin.connection import TwinServices
from serve_app.twin.history_log import HistoryChunk
from serve_app.twin.operator_actions import MAX_SHELVE_S
from serve_app.twin.routes import twin_services
from serve_app.web.wire import SESSION_ID_PATTERN

router = APIRouter(tags=["operator actions"])
FUTURE_TOLERANCE_S = 60.0  # clocks differ: a window may end this far past the server's now


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="why: kept with the action")


class ShelveRequest(Reason):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    signal: str = Field(min_length=1, max_length=200)
    kind: Literal[ALERT_KINDS]  # type: ignore[valid-type]
    duration_s: float = Field(gt=0.0, le=MAX_SHELVE_S)


class WindowRequest(Reason):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    start: str = Field(min_length=1, max_length=64, description="first sample time (ISO 8601 or epoch seconds)")
    end: str = Field(min_length=1, max_length=64, description="last sample time (ISO 8601 or epoch seconds)")


class ProposalRequest(Reason):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


def _seconds(text: str, field: str) -> float:
    """A window bound given as epoch seconds or ISO 8601 (UTC when no offset is given); 422 otherwise."""
    seconds = plant_seconds(text)
    if seconds is None:
        raise HTTPException(422, f"`{field}` is neither ISO 8601 nor epoch seconds: {text[:64]!r}")
    return seconds


def _who(http: Request) -> str:
    return http.state.principal.identity


async def _calibration(services: TwinServices, ensemble: str) -> tuple[dict, int, MonitorCalibration]:
    """(the ensemble's description, the calibration version in force, that calibration); 404 / 409."""
    info = await services.ensembles.describe(ensemble)
    if info is None:
        raise HTTPException(404, f"ensemble {ensemble!r} not found")
    if not info.get("monitor"):
        raise HTTPException(409, f"ensemble {ensemble!r} has no monitor calibration to change")
    await services.operator.start()
    version, stored = services.operator.calibration(ensemble)
    return info, version, MonitorCalibration.model_validate(stored if stored is not None else info["monitor"])


async def _measured_rows(services: TwinServices, session_id: str, targets: list[str]) -> list[HistoryChunk]:
    """The session's history chunks with measured values, predicted for these targets; 404 / 422."""
    chunks = await services.sessions.history(session_id, None)
    if chunks is None:
        raise HTTPException(404, f"session {session_id!r} not found (unknown or expired)")
    chunks = [c for c in chunks if c.actual is not None]
    if any(list(c.target_signals) != targets for c in chunks):
        raise HTTPException(422, f"session {session_id!r} was not monitored with this ensemble's targets")
    return chunks


def _stacked(chunks: list[HistoryChunk], keep) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(predictions, actual, {boundary signal: its readings}) of the rows `keep(chunk)` selects ([k] bool
    per chunk), in order."""
    picked = [(c, mask) for c in chunks if (mask := keep(c)).any()]
    if not picked:
        return np.empty((0, 0)), np.empty((0, 0)), {}
    inputs: dict[str, list[np.ndarray]] = {}
    for chunk, mask in picked:
        for b, name in enumerate(chunk.boundary_signals):
            inputs.setdefault(name, []).append(chunk.boundary[mask, b])
    return (np.concatenate([c.predictions[mask] for c, mask in picked]),
            np.concatenate([c.actual[mask] for c, mask in picked]),
            {name: np.concatenate(parts) for name, parts in inputs.items()})


def _proposal(info: dict, calibration: MonitorCalibration, chunks: list[HistoryChunk]) -> dict:
    """The recalibration proposal from the session's alert-free operation (judged by `calibration`);
    409 while there is too little of it."""
    targets = info["target_signals"]
    runs = [(c.predictions, c.actual, c.timestamps, c.boundary if c.boundary_signals else None) for c in chunks]
    keep = alert_free(calibration, targets, info["boundary_signals"], runs)
    predictions = np.concatenate([c.predictions for c in chunks])[keep] if chunks else np.empty((0, len(targets)))
    actual = np.concatenate([c.actual for c in chunks])[keep] if chunks else np.empty((0, len(targets)))
    if len(predictions) < PROPOSAL_MIN_SAMPLES:
        raise HTTPException(409, f"the session has {len(predictions)} alert-free measured samples; a proposal "
                                 f"needs {PROPOSAL_MIN_SAMPLES}")
    proposed, compared = recalibration_proposal(calibration, targets, predictions, actual)
    return {"samples": len(predictions), "thresholds": compared, "calibration": proposed.model_dump()}


@router.post("/api/admin/alerts/shelve")
async def shelve_alert(body: ShelveRequest, http: Request, services: TwinServices = Depends(twin_services)) -> dict:
    """Shelve an alert of a session for `duration_s` (at most a day): it is recorded but not pushed to the
    client meanwhile; when the time runs out the client hears how it stands."""
    await services.alert_log.flush()
    if not await services.sessions.visible(body.session_id, None):
        raise HTTPException(404, f"session {body.session_id!r} not found")
    opened = await asyncio.to_thread(services.alert_log.recent, 1, body.session_id, body.signal, body.kind)
    if not opened:
        raise HTTPException(404, f"no {body.kind} alert on {body.signal!r} in session {body.session_id!r}")
    await services.operator.start()
    record = await asyncio.to_thread(services.operator.shelve, body.session_id, body.signal, body.kind,
                                     body.duration_s, _who(http), body.reason)
    return {"shelved": {k: v for k, v in record.items() if k != "until"}}


@router.get("/api/admin/alerts/shelves")
async def shelves(session_id: str = Query(pattern=SESSION_ID_PATTERN),
                  services: TwinServices = Depends(twin_services)) -> dict:
    """The session's shelved alerts in force now."""
    held = await asyncio.to_thread(services.operator.shelves_of, session_id)
    return {"shelves": [{k: v for k, v in s.items() if k != "until"} for s in held]}


@router.get("/api/admin/ensembles/{name}/calibration")
async def calibration_versions(name: str, services: TwinServices = Depends(twin_services)) -> dict:
    """The calibration version in force and every version made by operators (0: the manifest's)."""
    _, version, calibration = await _calibration(services, name)
    return {"ensemble": name, "in_force": version,
            "thresholds": {t: th.model_dump() for t, th in calibration.thresholds.items()},
            "levels": {t: {"residual_mean": s.residual_mean, "residual_std": s.residual_std}
                       for t, s in calibration.signals.items()},
            "input_levels": {b: level.model_dump() for b, level in calibration.input_levels.items()},
            "versions": await asyncio.to_thread(services.operator.versions, name)}


@router.post("/api/admin/ensembles/{name}/calibration/accept")
async def accept_new_normal(name: str, body: WindowRequest, http: Request,
                            services: TwinServices = Depends(twin_services)) -> dict:
    """Accept a window of a session's operation as the new normal: each target's normal level (and
    spread, where wider) becomes the window's, as a new calibration version in force for every session
    of the ensemble; their open alerts clear."""
    start, end = _seconds(body.start, "start"), _seconds(body.end, "end")
    if end <= start:
        raise HTTPException(422, "the window's `end` must come after its `start`")
    if end > time.time() + FUTURE_TOLERANCE_S:
        raise HTTPException(422, "the window ends in the future: only operation already seen can be accepted")
    info, version, calibration = await _calibration(services, name)
    chunks = await _measured_rows(services, body.session_id, info["target_signals"])

    def inside(chunk: HistoryChunk) -> np.ndarray:
        seconds = np.array([plant_seconds(t) for t in chunk.timestamps], dtype=float)  # not a time: NaN, outside
        return (seconds >= start) & (seconds <= end)
    predictions, actual, inputs = _stacked(chunks, inside)
    if len(predictions) < MIN_ACCEPT_SAMPLES:
        raise HTTPException(422, f"the window holds {len(predictions)} measured samples of session "
                                 f"{body.session_id!r}; at least {MIN_ACCEPT_SAMPLES} are needed")
    try:
        accepted = await asyncio.to_thread(rebaselined, calibration, info["target_signals"], predictions, actual,
                                           inputs)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    details = {"session_id": body.session_id, "window": {"start": body.start, "end": body.end,
                                                         "samples": len(predictions)}}
    new = await asyncio.to_thread(services.operator.add_version, name, accepted.model_dump(), "accept_new_normal",
                                  _who(http), body.reason, details)
    levels = {t: {"residual_mean": {"was": calibration.signals[t].residual_mean,
                                    "now": accepted.signals[t].residual_mean},
                  "residual_std": {"was": calibration.signals[t].residual_std,
                                   "now": accepted.signals[t].residual_std}} for t in info["target_signals"]}
    input_levels = {b: {"mean": {"was": calibration.input_levels[b].mean, "now": level.mean},
                        "std": {"was": calibration.input_levels[b].std, "now": level.std}}
                    for b, level in accepted.input_levels.items()}
    return {"ensemble": name, "version": new, "replaces": version, "samples": len(predictions), "levels": levels,
            "input_levels": input_levels}


async def _proposal_from(services: TwinServices, name: str, session_id: str) -> tuple[int, dict]:
    info, version, calibration = await _calibration(services, name)
    chunks = await _measured_rows(services, session_id, info["target_signals"])
    return version, await asyncio.to_thread(_proposal, info, calibration, chunks)


@router.get("/api/admin/ensembles/{name}/calibration/proposal")
async def show_proposal(name: str, session_id: str = Query(pattern=SESSION_ID_PATTERN),
                                 services: TwinServices = Depends(twin_services)) -> dict:
    """A recalibration from the session's alert-free operation (409 until it has PROPOSAL_MIN_SAMPLES):
    the thresholds in force and those proposed, side by side. Nothing changes until it is applied."""
    version, proposal = await _proposal_from(services, name, session_id)
    return {"ensemble": name, "in_force": version, "samples": proposal["samples"],
            "thresholds": proposal["thresholds"]}


@router.post("/api/admin/ensembles/{name}/calibration/proposal")
async def apply_proposal(name: str, body: ProposalRequest, http: Request,
                         services: TwinServices = Depends(twin_services)) -> dict:
    """Apply the recalibration proposal of the session's alert-free operation as a new version."""
    version, proposal = await _proposal_from(services, name, body.session_id)
    new = await asyncio.to_thread(services.operator.add_version, name, proposal["calibration"], "recalibration",
                                  _who(http), body.reason, {"session_id": body.session_id,
                                                            "samples": proposal["samples"]})
    return {"ensemble": name, "version": new, "replaces": version, "samples": proposal["samples"],
            "thresholds": proposal["thresholds"]}


@router.post("/api/admin/ensembles/{name}/calibration/rollback")
async def rollback_calibration(name: str, body: Reason, http: Request,
                               services: TwinServices = Depends(twin_services)) -> dict:
    """Roll the calibration version in force back to the one before (409 at the manifest's)."""
    await _calibration(services, name)
    rolled = await asyncio.to_thread(services.operator.rollback, name, _who(http), body.reason)
    if rolled is None:
        raise HTTPException(409, f"ensemble {name!r} runs on its manifest's calibration: nothing to roll back")
    return {"ensemble": name, "rolled_back": rolled[0], "in_force": rolled[1]}
