"""HTTP and WebSocket routes of the digital twin (docs/protocol.md, part 1).

The ingress builds one `TwinServices` per replica and keeps it in `app.state.twin`; these routes only
translate between HTTP and those services.
"""
# No `from __future__ import annotations`: FastAPI reads these signatures at import time.

import asyncio
import re
import time
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from models.monitor import ALERT_KINDS
from models.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from serve_app.settings import FRONTEND, project_path
from serve_app.twin.connection import TwinConnection, TwinServices
from serve_app.twin.history import history_csv, history_json
from serve_app.twin.session_shard import HistoryChunk
from serve_app.web.wire import SESSION_ID_PATTERN

router = APIRouter(tags=["digital twin"])
RESULT_FILE = re.compile(r"^[A-Za-z0-9_.:-]+_\d{8}_\d{6}\.(csv|json)$")


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
            await TwinConnection(websocket, services, session_id).serve()


@router.get("/api/v1/ensembles")
async def ensembles(services: TwinServices = Depends(twin_services)) -> dict:
    """Ensembles a client can name in `config`."""
    return {"ensembles": await services.ensembles.names()}


@router.get("/twin", include_in_schema=False)
async def twin_page() -> FileResponse:
    return FileResponse(FRONTEND / "twin.html")


@router.get("/api/v1/demo/plant")
async def demo_plant(samples: int = Query(1000, ge=1, le=20000), seed: int = Query(0, ge=0, le=2**31)) -> dict:
    """Simulated demo-plant data (boundary inputs and measured targets) for dashboards and clients."""
    run = await asyncio.to_thread(simulate, samples, seed)
    return {"boundary_signals": BOUNDARY_SIGNALS, "target_signals": TARGET_SIGNALS, "timestamps": run.timestamps,
            "boundary": run.boundary.round(6).tolist(), "target": run.target.round(6).tolist()}


@router.get("/api/v1/inference/stream/stats")
async def twin_stats(services: TwinServices = Depends(twin_services)) -> dict:
    """Connections and prediction counts over all twin sessions (within one flush interval)."""
    sessions = await services.sessions.summaries()
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


async def _history(services: TwinServices, session_id: str) -> list[HistoryChunk]:
    chunks = await services.sessions.history(session_id)
    if chunks is None:
        raise HTTPException(404, f"session {session_id!r} not found (unknown or expired)")
    return chunks


@router.post("/api/v1/inference/stream/save")
async def twin_save(request: SaveRequest, services: TwinServices = Depends(twin_services)) -> dict:
    """Write the session's history to the server's results folder (never to a client-named path)."""
    chunks = await _history(services, request.session_id)
    body = history_csv(chunks) if request.format == "csv" else history_json(request.session_id, chunks)
    results_dir = project_path(services.settings.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = f"{request.session_id}_{time.strftime('%Y%m%d_%H%M%S')}.{request.format}"
    path = results_dir / name
    path.write_text(body)
    samples = sum(len(c) for c in chunks)
    return {"status": "success", "message": f"saved {samples} samples", "output_path": str(path),
            "samples_saved": samples, "download_url": f"/api/v1/inference/stream/results/{name}"}


@router.get("/api/v1/inference/stream/results/{file_name}")
async def twin_result(file_name: str, services: TwinServices = Depends(twin_services)) -> FileResponse:
    """Download a file written by `save`."""
    path = project_path(services.settings.results_dir) / file_name
    if not RESULT_FILE.match(file_name) or not path.is_file():
        raise HTTPException(404, "no such result file")
    return FileResponse(path, filename=file_name)


@router.get("/api/v1/inference/stream/history/{session_id}")
async def twin_history(session_id: str, format: Literal["csv", "json"] = "csv",
                       services: TwinServices = Depends(twin_services)) -> Response:
    """The session's history as a download, without writing a file."""
    chunks = await _history(services, session_id)
    if format == "csv":
        return Response(history_csv(chunks), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{session_id}.csv"'})
    monitoring = await services.sessions.monitoring(session_id)
    return Response(history_json(session_id, chunks, monitoring), media_type="application/json")


@router.get("/api/v1/alerts")
async def alerts(session_id: str | None = Query(None, pattern=SESSION_ID_PATTERN),
                 signal: str | None = Query(None, max_length=200),
                 kind: Literal[ALERT_KINDS] | None = None,  # type: ignore[valid-type]
                 limit: int = Query(100, ge=1, le=1000), services: TwinServices = Depends(twin_services)) -> dict:
    """Recent twin alerts (opened and cleared), newest first, from MongoDB."""
    await services.alert_log.flush()
    return {"alerts": await asyncio.to_thread(services.alert_log.recent, limit, session_id, signal, kind)}


@router.delete("/api/admin/ensembles/{name}", status_code=204)
async def retire_ensemble(name: str, services: TwinServices = Depends(twin_services)) -> Response:
    """Take an ensemble out of service: new `config`s naming it get ENSEMBLE_NOT_FOUND (the folder is kept
    under the repository's .retired/)."""
    if not await services.ensembles.retire(name):
        raise HTTPException(404, f"ensemble {name!r} not found")
    return Response(status_code=204)
