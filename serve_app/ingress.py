"""The FastAPI ingress deployment: WebSocket streams and HTTP API. The only module that knows the wire."""
# No `from __future__ import annotations` here: serve.ingress re-wraps the methods and FastAPI must see
# real annotation objects (a string "WebSocket" would turn the socket into a query parameter).

import asyncio
import base64
import binascii
import gc
import logging
import re
import time
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError
from ray import serve

from deployments.ensemble_predictor import RowBatch
from models.monitor import ALERT_KINDS
from models.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate
from serve_app import codec
from serve_app.access import AccessControl, AccessPolicy
from serve_app.alert_log import AlertLog
from serve_app.auth import Authenticator
from serve_app.coalescer import PredictionCoalescer
from serve_app.history_export import history_csv, history_json
from serve_app.limits import ConnectionLimiter
from serve_app.local_detector import LocalDetector
from serve_app.local_ensembles import LocalEnsembles
from serve_app.metrics import StreamMetrics
from serve_app.session_store import SessionStore
from serve_app.settings import PROJECT_ROOT, AppSettings, project_path
from serve_app.store_db import StoreDatabase
from serve_app.store_protocol import StoreError, checked_image, error
from serve_app.store_sessions import StoreSessions
from serve_app.store_stream import KioskConnection, StoreServices
from serve_app.twin_protocol import SESSION_ID_PATTERN, ErrorCode, WireError
from serve_app.twin_stream import TwinConnection, TwinServices
from serve_app.websocket_compression import decline_websocket_compression

logger = logging.getLogger("streamforge.ingress")

app = FastAPI(title="StreamForge", version="0.1.0",
              description="Real-time inference for sensor and camera streams on Ray Serve.")
app.add_middleware(AccessControl)
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


class KioskTokenRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    ttl_s: int = Field(86400, ge=60, description="capped by auth.kiosk_token_max_ttl_s")


class ProductUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    price: float = Field(ge=0, le=1_000_000)
    yolo_class_id: int = Field(ge=0, le=10_000)


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
        if not self.settings.websocket_compression:
            decline_websocket_compression()  # before Ray starts this replica's server
        self.auth = Authenticator(self.settings.auth)
        app.state.access = AccessPolicy(self.auth, self.settings.max_http_body_bytes, self.settings.http_requests_per_s,
                                        self.settings.http_burst)
        if not self.auth.enabled:
            logger.warning("auth is OFF: StreamForge answers loopback clients only; enable `auth` to serve a network")
        self.metrics = StreamMetrics()
        self.connections = ConnectionLimiter(self.settings.max_connections, self.settings.max_connections_per_address)
        self.predictor, self.detector, self.faces = predictor, detector, faces
        self.db = StoreDatabase(mongo_uri)
        self.alert_log = AlertLog(mongo_uri)
        self.results_dir = project_path(self.settings.results_dir)
        app_name = serve.get_replica_context().app_name
        self.sessions = SessionStore(f"streamforge-{app_name}", self.settings.session_shards,
                                     self.settings.history_limit, self.settings.session_ttl_s,
                                     self.settings.session_flush_interval_s, mongo_uri)
        if self.settings.twin_inference == "ingress":
            # `ingress_twin_calls` at a time per replica, one ONNX Runtime thread each (README, "Measured numbers")
            call = LocalEnsembles(project_path(self.settings.model_repository)).predict
            max_calls = self.settings.ingress_twin_calls
        else:
            def call(ensemble: str, rows: RowBatch):
                return self.predictor.options(multiplexed_model_id=ensemble).predict.remote(rows)
            max_calls = 4
        self.coalescer = PredictionCoalescer(call, self.settings.coalesce_max_rows, self.settings.coalesce_wait_s,
                                             max_calls)
        self.twin = TwinServices(describe=self._describe, predict=self.coalescer.predict, sessions=self.sessions,
                                 record_alerts=self.alert_log.record,
                                 max_message_bytes=self.settings.max_message_bytes,
                                 max_inflight=self.settings.max_inflight_per_connection,
                                 messages_per_s=self.settings.twin_messages_per_s,
                                 message_burst=self.settings.twin_burst, metrics=self.metrics)
        self.store_sessions = StoreSessions(f"streamforge-{app_name}", self.settings.session_shards, mongo_uri,
                                            self.settings.store_session_ttl_s)
        self.catalogue: tuple[float, dict[int, dict]] = (0.0, {})
        if self.settings.store_inference == "ingress":
            detect = LocalDetector(project_path(self.settings.detector_weights), self.settings.detector_conf,
                                   self.settings.detector_iou, self.settings.ingress_detector_calls).detect
        else:
            def detect(frame: bytes):
                return self.detector.detect.remote(frame)
        self.store = StoreServices(detect=detect,
                                   identify=lambda frame: self.faces.identify.remote(frame),
                                   products_by_class=self._products_by_class, sessions=self.store_sessions,
                                   max_frame_bytes=self.settings.max_frame_bytes,
                                   face_interval_s=self.settings.face_interval_s,
                                   cart_k=self.settings.cart_stable_k, cart_n=self.settings.cart_stable_n,
                                   frames_per_s=self.settings.kiosk_frames_per_s, frame_burst=self.settings.kiosk_burst,
                                   metrics=self.metrics)
        # Everything loaded so far (Ray, FastAPI, models) lives as long as the replica: keep it out of the
        # garbage collector's full passes. Measured under 64 twin sessions: full collections paused the event
        # loop for 142-279 ms (every in-flight reply waited), 5-8 ms after the freeze (README).
        gc.freeze()

    async def _products_by_class(self) -> dict[int, dict]:
        """The catalogue by detector class, re-read every `catalogue_refresh_s`."""
        loaded_at, products = self.catalogue
        if time.monotonic() - loaded_at > self.settings.catalogue_refresh_s:
            products = await asyncio.to_thread(self.db.products_by_class)
            self.catalogue = (time.monotonic(), products)
        return products

    async def _admit(self, websocket: WebSocket, stream: str) -> str | None:
        """Accept a WebSocket within the connection limits; its client address, or None when refused."""
        address = websocket.client.host if websocket.client else "unknown"
        refused = self.connections.acquire(address)
        await websocket.accept()
        if refused:
            self.metrics.errors.inc(tags={"stream": stream, "code": ErrorCode.TOO_MANY_CONNECTIONS})
            reply = WireError(ErrorCode.TOO_MANY_CONNECTIONS, refused + "; retry later").to_message()
            await websocket.send_text(codec.encode(reply, False))
            await websocket.close(code=1013)  # try again later
            return None
        self.metrics.connection_opened(stream)
        return address

    def _release(self, address: str, stream: str) -> None:
        self.connections.release(address)
        self.metrics.connection_closed(stream)

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
        address = await self._admit(websocket, "twin")
        if address is None:
            return
        try:
            await TwinConnection(websocket, self.twin, session_id).serve()
        finally:
            self._release(address, "twin")

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
        monitoring = await self.sessions.monitoring(session_id)
        return Response(history_json(session_id, chunks, monitoring), media_type="application/json")

    @app.get("/api/v1/alerts")
    async def alerts(self, session_id: str | None = Query(None, pattern=SESSION_ID_PATTERN),
                     signal: str | None = Query(None, max_length=200),
                     kind: Literal[ALERT_KINDS] | None = None,  # type: ignore[valid-type]
                     limit: int = Query(100, ge=1, le=1000)) -> dict:
        """Recent twin alerts (opened and cleared), newest first, from MongoDB."""
        await self.alert_log.flush()
        return {"alerts": await asyncio.to_thread(self.alert_log.recent, limit, session_id, signal, kind)}

    # smart store ---------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def kiosk_page(self) -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    @app.websocket("/ws/{session_id}")
    async def kiosk_stream(self, websocket: WebSocket, session_id: str):
        """Smart-store kiosk stream (PROTOCOL.md section 2)."""
        address = await self._admit(websocket, "kiosk")
        if address is None:
            return
        try:
            if not re.match(SESSION_ID_PATTERN, session_id):
                await websocket.send_text(codec.encode(error(StoreError.INVALID_MESSAGE, "invalid session id: use 1-128 of A-Z a-z 0-9 _ . : -"), False))
                await websocket.close(code=1008)
                return
            await KioskConnection(websocket, self.store, session_id).serve()
        except PyMongoError as exc:
            logger.error("kiosk session %s: database unavailable: %s", session_id, exc)
            await websocket.send_text(codec.encode(error(StoreError.STORE_UNAVAILABLE, "the store database is unavailable"), False))
            await websocket.close(code=1011)
        finally:
            self._release(address, "kiosk")

    @app.get("/api/products")
    async def products(self) -> dict:
        """The catalogue."""
        return {"products": await asyncio.to_thread(self.db.products)}

    @app.post("/api/checkout")
    async def checkout(self, request: CheckoutRequest, http: Request):
        """Turn the session's cart into one order (idempotent per cart), for the recognised shopper."""
        if not http.state.principal.may_use_store_session(request.session_id):
            raise HTTPException(403, "this token may not check out that session")
        order, refused = await self.store_sessions.checkout(request.session_id)
        if refused:
            return JSONResponse({"success": False, "message": refused, "error": refused}, status_code=400)
        return {"success": True, "message": f"order {order['order_id']} paid: total {order['total']}",
                "transaction_id": order["order_id"], "order": order}

    @app.get("/api/orders/{order_id}")
    async def order(self, order_id: str, http: Request) -> dict:
        """An order; a kiosk token sees only its own session's orders."""
        found = await asyncio.to_thread(self.db.order, order_id)
        if found is None or not http.state.principal.may_use_store_session(found["session_id"]):
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

    # administration (admin tokens only, see serve_app.access) ----------------------------------------------
    @app.post("/api/auth/kiosk-tokens", status_code=201)
    async def issue_kiosk_token(self, request: KioskTokenRequest) -> dict:
        """A signed token that lets one kiosk use its own store session only."""
        if not self.auth.enabled:
            raise HTTPException(409, "auth is off: kiosks need no token")
        token, expires = self.auth.kiosk_token(request.session_id, request.ttl_s)
        return {"token": token, "session_id": request.session_id, "expires_at": expires}

    @app.put("/api/products/{sku}")
    async def put_product(self, sku: str, product: ProductUpdate) -> dict:
        """Create or change a catalogue product (409 when its detector class belongs to another SKU)."""
        if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", sku):
            raise HTTPException(422, "sku: use 1-64 of A-Z a-z 0-9 _ . -")
        saved = await asyncio.to_thread(self.db.upsert_product, sku, product.name, product.price, product.yolo_class_id)
        if saved is None:
            raise HTTPException(409, f"detector class {product.yolo_class_id} already belongs to another product")
        self.catalogue = (0.0, {})
        return saved

    @app.delete("/api/admin/ensembles/{name}", status_code=204)
    async def retire_ensemble(self, name: str) -> Response:
        """Take an ensemble out of service: new `config`s naming it get ENSEMBLE_NOT_FOUND (the folder is kept
        under the repository's .retired/)."""
        if not await self.predictor.retire.remote(name):
            raise HTTPException(404, f"ensemble {name!r} not found")
        return Response(status_code=204)

    @app.get("/api/users")
    async def list_users(self) -> dict:
        """Registered shoppers (without their face encodings)."""
        return {"users": await asyncio.to_thread(self.db.user_summaries)}

    @app.delete("/api/users/{user_id}", status_code=204)
    async def delete_user(self, user_id: str) -> Response:
        """Remove a shopper and their faces."""
        if not await asyncio.to_thread(self.db.delete_user, user_id):
            raise HTTPException(404, f"user {user_id!r} not found")
        await self.faces.invalidate.remote()
        return Response(status_code=204)
