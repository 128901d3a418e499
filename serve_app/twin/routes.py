"""HTTP and WebSocket routes of the digital twin (docs/protocol.md, part 1).

The ingress builds one `TwinServices` per replica and keeps it in `app.state.twin`; these routes only
translate between HTTP and those services.
"""
# No `from __future__ import annotations`: FastAPI reads these signatures at import time.

import asyncio
import re
import time
from pathlib import Path
from typing import AsyncIterator, Iterator, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from models.twin.monitor.alarm_figures import AlertChange, alarm_figures
from models.twin.monitor.events import ALERT_KINDS
from models.twin.monitor.flood import plant_seconds
from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, Fault, simulate
from serve_app.settings import FRONTEND, project_path
from serve_app.twin.connection import TwinConnection, TwinServices
from serve_app.twin.history import history_csv_parts, history_json_parts
from serve_app.twin.history_log import HistoryChunk
from serve_app.web.auth import Principal
from serve_app.web.bulk import run_bulk
from serve_app.web.wire import SESSION_ID_PATTERN

router = APIRouter(tags=["digital twin"])
DEMO_FAULT_SIGNALS = {"drift": "Temperature_target_2", "stuck": "Temperature_target_1", "dropout": "Power_target_2"}
DEMO_FAULT_MAGNITUDES = {"drift": 6.0, "fouling": 0.35}
RESULT_FILE = re.compile(r"^(?P<session>[A-Za-z0-9_.:-]+)_\d{8}_\d{6}\.(csv|json)$")


class SaveRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    format: Literal["csv", "json"] = "csv"
    output_path: str | None = Field(None, description="ignored: files are only written to the server's results folder")


def twin_services(connection: HTTPConnection) -> TwinServices:
    """This replica's twin services (set by the ingress)."""
    return connection.app.state.twin


@router.websocket("/api/v1/inference/stream")
async def twin_stream(websocket: WebSocket, session_id: str | None = Query(None, pattern=SESSION_ID_PATTERN),
                      services: TwinServices = Depends(twin_services)):
    """Digital-twin streaming inference; `?session_id=` resumes a session."""
    async with services.gate.admitted(websocket, "twin") as admitted:
        if admitted:
            await TwinConnection(websocket, services, session_id, websocket.state.principal).serve()


@router.get("/api/v1/ensembles")
async def ensembles(services: TwinServices = Depends(twin_services)) -> dict:
    """Ensembles a client can name in `config`."""
    return {"ensembles": await services.ensembles.names()}


@router.get("/twin", include_in_schema=False)
async def twin_page() -> FileResponse:
    return FileResponse(FRONTEND / "twin.html")


@router.get("/api/v1/demo/plant")
async def demo_plant(samples: int = Query(1000, ge=1, le=20000), seed: int = Query(0, ge=0, le=2**31),
                     fault: Literal["drift", "stuck", "dropout", "fouling"] | None = None) -> dict:
    """Simulated demo-plant data (boundary inputs and measured targets) for dashboards and clients;
    `fault` injects one over the middle third of the samples (models.twin.plant.Fault)."""
    faults = () if fault is None else (Fault(fault, samples // 3, 2 * samples // 3, DEMO_FAULT_SIGNALS.get(fault),
                                             DEMO_FAULT_MAGNITUDES.get(fault, 0.0)),)
    run = await asyncio.to_thread(simulate, samples, seed, faults=faults)
    return {"boundary_signals": BOUNDARY_SIGNALS, "target_signals": TARGET_SIGNALS, "timestamps": run.timestamps,
            "boundary": run.boundary.round(6).tolist(), "target": run.target.round(6).tolist()}


@router.get("/api/v1/inference/stream/stats")
async def twin_stats(http: Request, services: TwinServices = Depends(twin_services)) -> dict:
    """Connections and prediction counts over the caller's twin sessions (an admin's: all of them),
    including every reply sent before this request."""
    sessions = await services.sessions.summaries(http.state.principal.twin_viewer)
    total = sum(s["predictions_count"] for s in sessions)
    latency = sum(s["latency_sum_ms"] for s in sessions)
    connected = [s for s in sessions if s["connected"]]
    return {
        "active_connections": len(connected),
        "total_predictions": total,
        "average_latency_ms": latency / total if total else 0.0,
        "retained_sessions": len(sessions),
        "connections": [
            {"session_id": s["session_id"], "ensemble_name": s["ensemble_name"],
             "connected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s["connected_at"])),
             "predictions_count": s["predictions_count"], "mode": s["mode"]}
            for s in connected
        ],
    }


async def _history(services: TwinServices, session_id: str, client: Principal) -> list[HistoryChunk]:
    chunks = await services.sessions.history(session_id, client.twin_viewer)
    if chunks is None:
        raise HTTPException(404, f"session {session_id!r} not found (unknown or expired)")
    return chunks


@router.post("/api/v1/inference/stream/save")
async def twin_save(request: SaveRequest, http: Request, services: TwinServices = Depends(twin_services)) -> dict:
    """Write the session's history to the server's results folder (never to a client-named path)."""
    chunks = await _history(services, request.session_id, http.state.principal)
    name = f"{request.session_id}_{time.strftime('%Y%m%d_%H%M%S')}.{request.format}"
    path = project_path(services.settings.twin.results_dir) / name
    await run_bulk(_write_history, path, request.session_id, chunks, request.format)
    samples = sum(len(c) for c in chunks)
    return {"status": "success", "message": f"saved {samples} samples", "output_path": str(path),
            "samples_saved": samples, "download_url": f"/api/v1/inference/stream/results/{name}"}


@router.get("/api/v1/inference/stream/results/{file_name}")
async def twin_result(file_name: str, http: Request, services: TwinServices = Depends(twin_services)) -> FileResponse:
    """Download a file written by `save` (of one of the caller's sessions; an admin: any)."""
    path = project_path(services.settings.twin.results_dir) / file_name
    match = RESULT_FILE.match(file_name)
    viewer = http.state.principal.twin_viewer
    if (
        not match
        or not path.is_file()
        or (viewer is not None and not await services.sessions.visible(match["session"], viewer))
    ):
        raise HTTPException(404, "no such result file")
    return FileResponse(path, filename=file_name)


@router.get("/api/v1/inference/stream/history/{session_id}")
async def twin_history(session_id: str, http: Request, format: Literal["csv", "json"] = "csv",
                       services: TwinServices = Depends(twin_services)) -> Response:
    """The session's history as a download, without writing a file."""
    chunks = await _history(services, session_id, http.state.principal)
    # streamed, each part rendered in a low-priority worker thread (Arrow, without the GIL)
    if format == "csv":
        return StreamingResponse(_streamed(history_csv_parts(chunks)), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{session_id}.csv"'})
    monitoring = await services.sessions.monitoring(session_id, http.state.principal.twin_viewer)
    return StreamingResponse(_streamed(history_json_parts(session_id, chunks, monitoring)),
                             media_type="application/json")


async def _streamed(parts: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The parts of an export, each rendered in a low-priority worker thread."""
    while (part := await run_bulk(next, parts, None)) is not None:
        yield part


def _write_history(path: Path, session_id: str, chunks: list[HistoryChunk], file_format: str) -> None:
    """The history as a CSV or JSON file (in a worker thread: off the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.writelines(history_csv_parts(chunks) if file_format == "csv" else history_json_parts(session_id, chunks))


@router.get("/api/v1/alerts")
async def alerts(http: Request, session_id: str | None = Query(None, pattern=SESSION_ID_PATTERN),
                 signal: str | None = Query(None, max_length=200),
                 kind: Literal[ALERT_KINDS] | None = None,  # type: ignore[valid-type]
                 limit: int = Query(100, ge=1, le=1000), services: TwinServices = Depends(twin_services)) -> dict:
    """Recent twin alerts (opened and cleared) of the caller's sessions (an admin's: all), newest first."""
    await services.alert_log.flush()
    viewer = http.state.principal.twin_viewer
    own = None if viewer is None else [s["session_id"] for s in await services.sessions.summaries(viewer)]
    return {"alerts": await asyncio.to_thread(services.alert_log.recent, limit, session_id, signal, kind, own)}


@router.get("/api/v1/alerts/figures")
async def alert_figures(http: Request, session_id: str = Query(pattern=SESSION_ID_PATTERN),
                        stale_after_s: float = Query(86_400.0, gt=0.0, le=365 * 86_400.0),
                        services: TwinServices = Depends(twin_services)) -> dict:
    """The session's alarm-system figures after ISA-18.2 over its history (plant time, from its first to
    its last sample): alerts per 10 minutes, share of time with a standing alert, stale, chattering,
    flood share, top-10 share (models.twin.monitor.alarm_figures)."""
    span = await services.sessions.span(session_id, http.state.principal.twin_viewer)
    if span is None:
        raise HTTPException(404, f"session {session_id!r} not found (unknown or expired)")
    if not span:
        raise HTTPException(404, f"session {session_id!r} has no samples yet")
    await services.alert_log.flush()
    records = await asyncio.to_thread(services.alert_log.recent, 100_000, session_id)
    records = [r for r in reversed(records) if not r.get("reannounced")]  # a re-announcement opens nothing new
    times = [plant_seconds(t) for t in [*span, *(r["sample"] for r in records)]]
    if None in times:
        raise HTTPException(422, f"session {session_id!r} has timestamps that are not times (ISO 8601 or epoch "
                                 "seconds): alarm figures are counted in plant time")
    (start, end), at = times[:2], times[2:]
    changes = [AlertChange(t, r["signal"], r["kind"], r["opened"]) for t, r in zip(at, records)]
    figures = alarm_figures(changes, start, max(end, start + 1.0), stale_after_s)
    return {"session_id": session_id, "stale_after_s": stale_after_s, **figures.to_dict()}


class AlertAcknowledgement(BaseModel):
    """Which open alert an operator acknowledges."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    signal: str = Field(min_length=1, max_length=200)
    kind: Literal[ALERT_KINDS]  # type: ignore[valid-type]


@router.post("/api/v1/alerts/ack")
async def acknowledge_alert(http: Request, body: AlertAcknowledgement,
                            services: TwinServices = Depends(twin_services)) -> dict:
    """Acknowledge the latest opening of an alert of one of the caller's sessions (an admin's: any)."""
    await services.alert_log.flush()
    viewer = http.state.principal.twin_viewer
    if viewer is not None and not await services.sessions.visible(body.session_id, viewer):
        raise HTTPException(404, f"session {body.session_id!r} not found")
    who = http.state.principal.identity
    if not await asyncio.to_thread(services.alert_log.acknowledge, body.session_id, body.signal, body.kind, who):
        raise HTTPException(404, f"no {body.kind} alert on {body.signal!r} in session {body.session_id!r}")
    return {"acknowledged": True, **body.model_dump()}


@router.delete("/api/admin/ensembles/{name}", status_code=204)
async def retire_ensemble(name: str, services: TwinServices = Depends(twin_services)) -> Response:
    """Take an ensemble out of service: new `config`s naming it get ENSEMBLE_NOT_FOUND (the folder is kept
    under the repository's .retired/)."""
    if not await services.ensembles.retire(name):
        raise HTTPException(404, f"ensemble {name!r} not found")
    return Response(status_code=204)
