"""One kiosk connection of the smart store (`/ws/{session_id}`).

Frames arrive as JSON `frame` messages (base64 JPEG, data-URL prefix optional) or as binary WebSocket
frames of raw JPEG bytes. Latest frame wins: at most one frame per kiosk is at the detector, the newest
waits, and older waiting frames are dropped and counted - the queue never grows. Face recognition runs
beside detection, only while the session has no user and at most every `face_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ray.serve.handle import DeploymentHandle
from starlette.websockets import WebSocket, WebSocketDisconnect

from deployments.shared.detector_versions import DetectorVersions
from deployments.shared.mongo import ShopperRecords
from serve_app.settings import AppSettings
from serve_app.store.cart import CartTracker
from serve_app.store.catalogue import Catalogue
from serve_app.store.database import StoreDatabase
from serve_app.store.detection import DetectorPool, LocalDetector
from serve_app.store.enrollment import EnrollmentRecords
from serve_app.store.protocol import (
    ImageLimits,
    StoreError,
    cart_updated,
    checked_image,
    error,
    face_detected,
    frame_bytes,
)
from serve_app.store.sessions import StoreSessions
from serve_app.web import codec
from serve_app.web.admission import WebSocketGate
from serve_app.web.auth import Authenticator
from serve_app.web.background import ConnectionTasks
from serve_app.web.limits import TokenBucket
from serve_app.web.metrics import StreamMetrics
from serve_app.web.wire import WireError, now_iso

logger = logging.getLogger("streamforge.store")


@dataclass
class StoreServices:
    """What the kiosk connections of one ingress replica share."""

    settings: AppSettings
    detector: DetectorPool | LocalDetector
    faces: DeploymentHandle  # the FaceMatcher deployment
    catalogue: Catalogue
    sessions: StoreSessions
    db: StoreDatabase  # products, orders
    shoppers: ShopperRecords
    enrollments: EnrollmentRecords  # products being taught to the detector
    detector_versions: DetectorVersions
    mongo_uri: str  # for the training jobs this replica starts
    auth: Authenticator  # signs kiosk tokens
    gate: WebSocketGate
    metrics: StreamMetrics

    @property
    def image_limits(self) -> ImageLimits:
        """Limits of kiosk frames and registration photos."""
        return ImageLimits(self.settings.limits.max_frame_bytes, self.settings.limits.max_image_pixels)


@dataclass
class _Frame:
    data: bytes
    timestamp: str
    received: float


class KioskConnection:
    def __init__(self, websocket: WebSocket, services: StoreServices, session_id: str):
        self.ws, self.services, self.session_id = websocket, services, session_id
        settings = services.settings
        self.tracker = CartTracker(
            settings.store.cart_stable_k,
            settings.store.cart_stable_n,
            settings.store.cart_min_score,
            settings.store.cart_min_iou,
        )
        self.user: dict | None = None
        self.pending: _Frame | None = None
        self.frame_ready = asyncio.Event()
        self.dropped = 0
        self.face_busy = False
        self.face_tried_at = 0.0
        self.tasks = ConnectionTasks()
        self.send_lock = asyncio.Lock()
        self.frame_budget = TokenBucket(
            services.settings.limits.kiosk_frames_per_s, services.settings.limits.kiosk_burst
        )

    async def send(self, message: dict) -> None:
        if message["type"] == "error":
            self.services.metrics.errors.inc(tags={"stream": "kiosk", "code": message["error_code"]})
        async with self.send_lock:
            await self.ws.send_text(codec.encode(message, False))

    async def serve(self) -> None:
        state = await self.services.sessions.open(self.session_id)
        self.user = state["user"]
        if self.user:
            await self.send(face_detected(self.user))
        if state["cart"]:
            await self.send(cart_updated(state))
        logger.info("kiosk session %s connected (user %s, %d cart lines)", self.session_id,
                    self.user and self.user["id"], len(state["cart"]))
        self.tasks.start(self._detect_frames())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                reply = await self._handle(message)
                if reply is not None:
                    await self.send(reply)
        except WebSocketDisconnect:
            pass
        finally:
            self.tasks.cancel_all()
            logger.info("kiosk session %s disconnected (%d frames dropped)", self.session_id, self.dropped)

    async def _handle(self, message: dict) -> dict | None:
        limits = self.services.image_limits
        try:
            if message.get("bytes") is not None:
                return self._accept_frame(checked_image(message["bytes"], limits), now_iso())
            text = message.get("text") or ""
            if len(text) > limits.max_bytes * 2:
                raise WireError(StoreError.FRAME_TOO_LARGE, f"message exceeds {limits.max_bytes * 2} bytes")
            try:
                data = codec.decode(text)
            except codec.DecodeError:
                raise WireError(StoreError.INVALID_JSON, "message is not valid JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise WireError(StoreError.INVALID_MESSAGE, "a message must be an object with a string `type`")
            kind = data["type"]
            if kind == "frame":
                timestamp = data.get("timestamp")
                return self._accept_frame(frame_bytes(data.get("frame"), limits),
                                          timestamp if isinstance(timestamp, str) else now_iso())
            if kind == "ping":
                return {"type": "pong"}
            if kind == "cart_remove":
                return await self._remove(data.get("index"))
            raise WireError(StoreError.UNKNOWN_MESSAGE_TYPE, f"unknown message type `{kind}`",
                            {"supported": ["frame", "ping", "cart_remove"]})
        except WireError as err:
            return err.to_message()

    def _accept_frame(self, data: bytes, timestamp: str) -> dict:
        if not self.frame_budget.take():
            raise WireError(
                StoreError.RATE_LIMITED,
                f"more than {self.services.settings.limits.kiosk_frames_per_s:g} frames a second; "
                "this frame was dropped",
                {"timestamp": timestamp},
            )
        if self.pending is not None:
            self.dropped += 1
            self.services.metrics.frames.inc(tags={"outcome": "dropped"})
        self.pending = _Frame(data, timestamp, time.perf_counter())
        self.frame_ready.set()
        self._maybe_identify(data)
        return {"type": "frame_received", "timestamp": timestamp, "dropped_frames": self.dropped}

    async def _remove(self, index) -> dict:
        if isinstance(index, bool) or not isinstance(index, int):
            raise WireError(StoreError.INVALID_MESSAGE, "`index` must be an integer")
        state = await self.services.sessions.remove(self.session_id, index)
        if state is None:
            raise WireError(StoreError.INVALID_CART_INDEX, f"the cart has no line {index}")
        return cart_updated(state)

    async def _detect_frames(self) -> None:
        """Worker: detect the newest waiting frame, update the cart, repeat."""
        while True:
            await self.frame_ready.wait()
            self.frame_ready.clear()
            frame, self.pending = self.pending, None
            if frame is None:
                continue
            try:
                result = await self.services.detector.detect(frame.data)
                if isinstance(result, dict):
                    await self.send(error(StoreError.INVALID_IMAGE, "frame could not be decoded as an image",
                                          {"timestamp": frame.timestamp}))
                    continue
                await self._apply_detections(frame, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("detection failed in session %s", self.session_id)
                await self.send(error(StoreError.DETECTION_ERROR, "detection failed", {"reason": str(exc)[:200]}))

    async def _apply_detections(self, frame: _Frame, detections: list[dict]) -> None:
        products = await self.services.catalogue.by_class()
        known = [d for d in detections if d["class_id"] in products]
        latency_ms = (time.perf_counter() - frame.received) * 1000
        self.services.metrics.frames.inc(tags={"outcome": "processed"})
        self.services.metrics.frame_latency_ms.observe(latency_ms)
        await self.send({"type": "detections", "timestamp": frame.timestamp,
                         "latency_ms": round(latency_ms, 2),
                         "detections": [{**d, "product_id": products[d["class_id"]]["id"],
                                         "name": products[d["class_id"]]["name"]} for d in known]})
        additions = self.tracker.update(known)
        for class_id, units in additions.items():
            product = products[class_id]
            state = await self.services.sessions.add(self.session_id, product, units)
            await self.send({"type": "product_detected", "product": product, "quantity": units})
            await self.send(cart_updated(state))

    def _maybe_identify(self, data: bytes) -> None:
        now = time.monotonic()
        if self.user or self.face_busy or now - self.face_tried_at < self.services.settings.store.face_interval_s:
            return
        self.face_busy, self.face_tried_at = True, now
        self.tasks.start(self._identify(data))

    async def _identify(self, data: bytes) -> None:
        try:
            user = await self.services.faces.identify.remote(data)
            if user and not self.user:
                user = {k: user[k] for k in ("id", "name", "phone")}
                await self.services.sessions.set_user(self.session_id, user)
                self.user = user
                await self.send(face_detected(user))
        except Exception:
            logger.exception("face recognition failed in session %s", self.session_id)
        finally:
            self.face_busy = False
