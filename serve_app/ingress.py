"""The FastAPI ingress deployment: WebSocket streams and HTTP API. The only module that knows the wire."""
# No `from __future__ import annotations` here: serve.ingress re-wraps the methods and FastAPI must see
# real annotation objects (a string "WebSocket" would turn the socket into a query parameter).


import logging
import re
import time
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from ray import serve

from serve_app.coalescer import PredictionCoalescer
from serve_app.history_export import history_csv, history_json
from serve_app.session_store import SessionStore
from serve_app.settings import AppSettings, project_path
from serve_app.twin_protocol import SESSION_ID_PATTERN
from serve_app.twin_stream import TwinConnection, TwinServices

logger = logging.getLogger("streamforge.ingress")

app = FastAPI(title="StreamForge", version="0.1.0",
              description="Real-time inference for sensor and camera streams on Ray Serve.")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

RESULT_FILE = re.compile(r"^[A-Za-z0-9_.:-]+_\d{8}_\d{6}\.(csv|json)$")


class SaveRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    format: Literal["csv", "json"] = "csv"
    output_path: str | None = Field(None, description="ignored: files are only written to the server's results folder")


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=1000)
@serve.ingress(app)
class StreamIngress:
    """Accepts client connections and routes their work to the model deployments and session actors."""

    def __init__(self, predictor, settings: dict | None = None):
        self.settings = AppSettings.model_validate(settings or {})
        self.predictor = predictor
        self.results_dir = project_path(self.settings.results_dir)
        app_name = serve.get_replica_context().app_name
        self.sessions = SessionStore(f"streamforge-{app_name}", self.settings.session_shards,
                                     self.settings.history_limit, self.settings.session_ttl_s,
                                     self.settings.session_flush_interval_s)
        self.coalescer = PredictionCoalescer(predictor, self.settings.coalesce_max_rows, self.settings.coalesce_wait_s)
        self.twin = TwinServices(describe=self._describe, predict=self.coalescer.predict, sessions=self.sessions,
                                 max_message_bytes=self.settings.max_message_bytes,
                                 max_inflight=self.settings.max_inflight_per_connection)

    async def _describe(self, ensemble_name: str) -> dict | None:
        return await self.predictor.options(multiplexed_model_id=ensemble_name).describe.remote()

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @app.get("/api/v1/ensembles")
    async def ensembles(self) -> dict:
        """Ensembles a client can name in `config`."""
        return {"ensembles": await self.predictor.list_ensembles.remote()}

    @app.websocket("/api/v1/inference/stream")
    async def twin_stream(self, websocket: WebSocket, session_id: str | None = Query(None, pattern=SESSION_ID_PATTERN)):
        """Digital-twin streaming inference (PROTOCOL.md section 1); `?session_id=` resumes a session."""
        await websocket.accept()
        await TwinConnection(websocket, self.twin, session_id).serve()

    @app.get("/api/v1/inference/stream/stats")
    async def twin_stats(self) -> dict:
        """Connections and prediction counts over all twin sessions (within one flush interval)."""
        sessions = await self.sessions.summaries()
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

    async def _history(self, session_id: str):
        chunks = await self.sessions.history(session_id)
        if chunks is None:
            raise HTTPException(404, f"session {session_id!r} not found (unknown or expired)")
        return chunks

    @app.post("/api/v1/inference/stream/save")
    async def twin_save(self, request: SaveRequest) -> dict:
        """Write the session's history to the server's results folder (never to a client-named path)."""
        chunks = await self._history(request.session_id)
        body = history_csv(chunks) if request.format == "csv" else history_json(request.session_id, chunks)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        name = f"{request.session_id}_{time.strftime('%Y%m%d_%H%M%S')}.{request.format}"
        path = self.results_dir / name
        path.write_text(body)
        samples = sum(len(c) for c in chunks)
        return {"status": "success", "message": f"saved {samples} samples", "output_path": str(path),
                "samples_saved": samples, "download_url": f"/api/v1/inference/stream/results/{name}"}

    @app.get("/api/v1/inference/stream/results/{file_name}")
    async def twin_result(self, file_name: str) -> FileResponse:
        """Download a file written by `save`."""
        path = self.results_dir / file_name
        if not RESULT_FILE.match(file_name) or not path.is_file():
            raise HTTPException(404, "no such result file")
        return FileResponse(path, filename=file_name)

    @app.get("/api/v1/inference/stream/history/{session_id}")
    async def twin_history(self, session_id: str, format: Literal["csv", "json"] = "csv") -> Response:
        """The session's history as a download, without writing a file."""
        chunks = await self._history(session_id)
        if format == "csv":
            return Response(history_csv(chunks), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{session_id}.csv"'})
        return Response(history_json(session_id, chunks), media_type="application/json")
