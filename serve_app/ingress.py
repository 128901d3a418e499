"""The FastAPI ingress deployment: WebSocket streams and HTTP API. The only module that knows the wire."""
# No `from __future__ import annotations` here: serve.ingress re-wraps the methods and FastAPI must see
# real annotation objects (a string "WebSocket" would turn the socket into a query parameter).

import asyncio
import base64
import binascii
import logging
import re
import time
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError
from ray import serve

from models.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from serve_app import codec
from serve_app.coalescer import PredictionCoalescer
from serve_app.history_export import history_csv, history_json
from serve_app.session_store import SessionStore
from serve_app.settings import PROJECT_ROOT, AppSettings, project_path
from serve_app.store_db import StoreDatabase
from serve_app.store_protocol import StoreError, checked_image, error
from serve_app.store_sessions import StoreSessions
from serve_app.store_stream import KioskConnection, StoreServices
from serve_app.twin_protocol import SESSION_ID_PATTERN, WireError
from serve_app.twin_stream import TwinConnection, TwinServices

logger = logging.getLogger("streamforge.ingress")

app = FastAPI(title="StreamForge", version="0.1.0",
              description="Real-time inference for sensor and camera streams on Ray Serve.")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
FRONTEND = PROJECT_ROOT / "frontend"
app.mount("/static", StaticFiles(directory=FRONTEND / "static", check_dir=False), name="static")


@app.exception_handler(PyMongoError)
async def database_unavailable(request: Request, exc: PyMongoError) -> JSONResponse:
    logger.error("database error on %s: %s", request.url.path, exc)
    return JSONResponse({"error": "the store database is unavailable, try again shortly"}, status_code=503)


@app.exception_handler(Exception)
async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


RESULT_FILE = re.compile(r"^[A-Za-z0-9_.:-]+_\d{8}_\d{6}\.(csv|json)$")


class SaveRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    format: Literal["csv", "json"] = "csv"
    output_path: str | None = Field(None, description="ignored: files are only written to the server's results folder")


class CheckoutRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class RegisterUser(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(pattern=r"^[0-9+\- ]{6,20}$")
    photos: list[str] = Field(min_length=1, max_length=5, description="base64 JPEG/PNG face photos (data URLs accepted)")


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=1000)
@serve.ingress(app)
class StreamIngress:
    """Accepts client connections and routes their work to the model deployments and session actors."""

    def __init__(self, predictor, detector, faces, mongo_uri: str, settings: dict | None = None):
        self.settings = AppSettings.model_validate(settings or {})
        self.predictor, self.detector, self.faces = predictor, detector, faces
        self.db = StoreDatabase(mongo_uri)
        self.results_dir = project_path(self.settings.results_dir)
        app_name = serve.get_replica_context().app_name
        self.sessions = SessionStore(f"streamforge-{app_name}", self.settings.session_shards,
                                     self.settings.history_limit, self.settings.session_ttl_s,
                                     self.settings.session_flush_interval_s)
        self.coalescer = PredictionCoalescer(predictor, self.settings.coalesce_max_rows, self.settings.coalesce_wait_s)
        self.twin = TwinServices(describe=self._describe, predict=self.coalescer.predict, sessions=self.sessions,
                                 max_message_bytes=self.settings.max_message_bytes,
                                 max_inflight=self.settings.max_inflight_per_connection)
        self.store_sessions = StoreSessions(f"streamforge-{app_name}", self.settings.session_shards, mongo_uri,
                                            self.settings.store_session_ttl_s)
        self.catalogue: tuple[float, dict[int, dict]] = (0.0, {})
        self.store = StoreServices(detect=lambda frame: self.detector.detect.remote(frame),
                                   identify=lambda frame: self.faces.identify.remote(frame),
                                   products_by_class=self._products_by_class, sessions=self.store_sessions,
                                   max_frame_bytes=self.settings.max_frame_bytes,
                                   face_interval_s=self.settings.face_interval_s,
                                   cart_k=self.settings.cart_stable_k, cart_n=self.settings.cart_stable_n)

    async def _products_by_class(self) -> dict[int, dict]:
        """The catalogue by detector class, re-read every `catalogue_refresh_s`."""
        loaded_at, products = self.catalogue
        if time.monotonic() - loaded_at > self.settings.catalogue_refresh_s:
            products = await asyncio.to_thread(self.db.products_by_class)
            self.catalogue = (time.monotonic(), products)
        return products

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

    @app.get("/twin", include_in_schema=False)
    async def twin_page(self) -> FileResponse:
        return FileResponse(FRONTEND / "twin.html")

    @app.get("/api/v1/demo/plant")
    async def demo_plant(self, samples: int = Query(1000, ge=1, le=20000), seed: int = Query(0, ge=0, le=2**31)) -> dict:
        """Simulated demo-plant data (boundary inputs and measured targets) for dashboards and clients."""
        run = await asyncio.to_thread(simulate, samples, seed)
        return {"boundary_signals": BOUNDARY_SIGNALS, "target_signals": TARGET_SIGNALS, "timestamps": run.timestamps,
                "boundary": run.boundary.round(6).tolist(), "target": run.target.round(6).tolist()}

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

    # smart store ---------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def kiosk_page(self) -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    @app.websocket("/ws/{session_id}")
    async def kiosk_stream(self, websocket: WebSocket, session_id: str):
        """Smart-store kiosk stream (PROTOCOL.md section 2)."""
        await websocket.accept()
        if not re.match(SESSION_ID_PATTERN, session_id):
            await websocket.send_text(codec.encode(error(StoreError.INVALID_MESSAGE, "invalid session id: use 1-128 of A-Z a-z 0-9 _ . : -"), False))
            await websocket.close(code=1008)
            return
        try:
            await KioskConnection(websocket, self.store, session_id).serve()
        except PyMongoError as exc:
            logger.error("kiosk session %s: database unavailable: %s", session_id, exc)
            await websocket.send_text(codec.encode(error(StoreError.STORE_UNAVAILABLE, "the store database is unavailable"), False))
            await websocket.close(code=1011)

    @app.get("/api/products")
    async def products(self) -> dict:
        """The catalogue."""
        return {"products": await asyncio.to_thread(self.db.products)}

    @app.post("/api/checkout")
    async def checkout(self, request: CheckoutRequest):
        """Turn the session's cart into one order (idempotent per cart), for the recognised shopper."""
        order, refused = await self.store_sessions.checkout(request.session_id)
        if refused:
            return JSONResponse({"success": False, "message": refused, "error": refused}, status_code=400)
        return {"success": True, "message": f"order {order['order_id']} paid: total {order['total']}",
                "transaction_id": order["order_id"], "order": order}

    @app.get("/api/orders/{order_id}")
    async def order(self, order_id: str) -> dict:
        found = await asyncio.to_thread(self.db.order, order_id)
        if found is None:
            raise HTTPException(404, f"order {order_id!r} not found")
        return found

    @app.get("/api/store/sessions/{session_id}")
    async def store_session(self, session_id: str) -> dict:
        """A kiosk session's user and cart."""
        state = await self.store_sessions.get(session_id)
        if state is None:
            raise HTTPException(404, f"session {session_id!r} not found")
        return {k: state[k] for k in ("session_id", "user", "cart", "cart_version")}

    @app.post("/api/users", status_code=201)
    async def register_user(self, request: RegisterUser) -> dict:
        """Register a shopper with one or more face photos; the largest face of each photo is stored.

        422 for photos without a face, 409 when the face already belongs to a registered shopper."""
        photos = []
        for i, photo in enumerate(request.photos):
            payload = photo.partition(",")[2] if photo.startswith("data:") else photo
            try:
                photos.append(checked_image(base64.b64decode(payload, validate=True), self.settings.max_frame_bytes))
            except (binascii.Error, ValueError):
                raise HTTPException(422, f"photo {i} is not valid base64") from None
            except WireError as err:
                raise HTTPException(413 if err.code == StoreError.FRAME_TOO_LARGE else 422, f"photo {i}: {err.message}") from None
        encodings = await self.faces.encode.remote(photos)
        if isinstance(encodings, str):
            raise HTTPException(422, encodings)
        if await self.faces.find.remote(encodings):
            raise HTTPException(409, "this face is already registered")
        user = await asyncio.to_thread(self.db.create_user, request.name, request.phone, encodings)
        await self.faces.invalidate.remote()
        return {"user": {"id": user["user_id"], "name": user["name"], "phone": user["phone"]}, "faces": len(encodings)}
