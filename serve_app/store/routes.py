"""HTTP and WebSocket routes of the smart store (docs/protocol.md, part 2).

The ingress builds one `StoreServices` per replica and keeps it in `app.state.store`; these routes only
translate between HTTP and those services.
"""
# No `from __future__ import annotations`: FastAPI reads these signatures at import time.

import asyncio
import base64
import binascii
import logging
import re

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError
from starlette.requests import HTTPConnection

from serve_app.settings import FRONTEND
from serve_app.store.connection import KioskConnection, StoreServices
from serve_app.store.protocol import ImageLimits, StoreError, checked_image, error
from serve_app.web import codec
from serve_app.web.wire import SESSION_ID_PATTERN, WireError

logger = logging.getLogger("streamforge.store")
SKU_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
router = APIRouter(tags=["smart store"])


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
    photos: list[str] = Field(
        min_length=1, max_length=5, description="base64 JPEG/PNG face photos (data URLs accepted)"
    )


def store_services(connection: HTTPConnection) -> StoreServices:
    """This replica's store services (set by the ingress)."""
    return connection.app.state.store


@router.websocket("/ws/{session_id}")
async def kiosk_stream(websocket: WebSocket, session_id: str, services: StoreServices = Depends(store_services)):
    """Smart-store kiosk stream."""
    async with services.gate.admitted(websocket, "kiosk") as admitted:
        if not admitted:
            return
        if not re.match(SESSION_ID_PATTERN, session_id):
            await websocket.send_text(
                codec.encode(
                    error(StoreError.INVALID_MESSAGE, "invalid session id: use 1-128 of A-Z a-z 0-9 _ . : -"), False
                )
            )
            await websocket.close(code=1008)
            return
        try:
            await KioskConnection(websocket, services, session_id).serve()
        except PyMongoError as exc:
            logger.error("kiosk session %s: database unavailable: %s", session_id, exc)
            await websocket.send_text(
                codec.encode(error(StoreError.STORE_UNAVAILABLE, "the store database is unavailable"), False)
            )
            await websocket.close(code=1011)


@router.get("/", include_in_schema=False)
async def kiosk_page() -> FileResponse:
    return FileResponse(FRONTEND / "index.html")


@router.get("/api/products")
async def products(services: StoreServices = Depends(store_services)) -> dict:
    """The catalogue."""
    return {"products": await asyncio.to_thread(services.db.products)}


@router.post("/api/checkout")
async def checkout(request: CheckoutRequest, http: Request, services: StoreServices = Depends(store_services)):
    """Turn the session's cart into one order (idempotent per cart), for the recognised shopper."""
    if not http.state.principal.may_use_store_session(request.session_id):
        raise HTTPException(403, "this token may not check out that session")
    order, refused = await services.sessions.checkout(request.session_id)
    if refused:
        return JSONResponse({"success": False, "message": refused, "error": refused}, status_code=400)
    return {"success": True, "message": f"order {order['order_id']} paid: total {order['total']}",
            "transaction_id": order["order_id"], "order": order}


@router.get("/api/orders/{order_id}")
async def order(order_id: str, http: Request, services: StoreServices = Depends(store_services)) -> dict:
    """An order; a kiosk token sees only its own session's orders."""
    found = await asyncio.to_thread(services.db.order, order_id)
    if found is None or not http.state.principal.may_use_store_session(found["session_id"]):
        raise HTTPException(404, f"order {order_id!r} not found")
    return found


@router.get("/api/store/sessions/{session_id}")
async def store_session(session_id: str, services: StoreServices = Depends(store_services)) -> dict:
    """A kiosk session's user and cart."""
    state = await services.sessions.get(session_id)
    if state is None:
        raise HTTPException(404, f"session {session_id!r} not found")
    return {k: state[k] for k in ("session_id", "user", "cart", "cart_version")}


def photo_bytes(i: int, photo: str, limits: ImageLimits) -> bytes:
    """One uploaded photo (base64, data URL accepted) as checked image bytes; HTTP 413/422 otherwise."""
    payload = photo.partition(",")[2] if photo.startswith("data:") else photo
    try:
        return checked_image(base64.b64decode(payload, validate=True), limits)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"photo {i} is not valid base64") from None
    except WireError as err:
        too_large = err.code in (StoreError.FRAME_TOO_LARGE, StoreError.IMAGE_TOO_LARGE)
        raise HTTPException(413 if too_large else 422, f"photo {i}: {err.message}") from None


@router.post("/api/users", status_code=201)
async def register_user(request: RegisterUser, services: StoreServices = Depends(store_services)) -> dict:
    """Register a shopper with one or more face photos; the largest face of each photo is stored.

    422 for photos without a face, 409 when the face already belongs to a registered shopper."""
    photos = [photo_bytes(i, p, services.image_limits) for i, p in enumerate(request.photos)]
    encodings = await services.faces.encode.remote(photos)
    if isinstance(encodings, str):
        raise HTTPException(422, encodings)
    if await services.faces.find.remote(encodings):
        raise HTTPException(409, "this face is already registered")
    user = await asyncio.to_thread(services.shoppers.create, request.name, request.phone, encodings)
    await services.faces.invalidate.remote()
    return {"user": {"id": user["user_id"], "name": user["name"], "phone": user["phone"]}, "faces": len(encodings)}


# administration (admin tokens only, see serve_app.web.access) -----------------------------------------
@router.post("/api/auth/kiosk-tokens", status_code=201)
async def issue_kiosk_token(request: KioskTokenRequest, services: StoreServices = Depends(store_services)) -> dict:
    """A signed token that lets one kiosk use its own store session only."""
    if not services.auth.enabled:
        raise HTTPException(409, "auth is off: kiosks need no token")
    token, expires = services.auth.kiosk_token(request.session_id, request.ttl_s)
    return {"token": token, "session_id": request.session_id, "expires_at": expires}


@router.put("/api/products/{sku}")
async def put_product(sku: str, product: ProductUpdate, services: StoreServices = Depends(store_services)) -> dict:
    """Create or change a catalogue product (409 when its detector class belongs to another SKU)."""
    if not re.match(SKU_PATTERN, sku):
        raise HTTPException(422, "sku: use 1-64 of A-Z a-z 0-9 _ . -")
    saved = await asyncio.to_thread(services.db.upsert_product, sku, product.name, product.price, product.yolo_class_id)
    if saved is None:
        raise HTTPException(409, f"detector class {product.yolo_class_id} already belongs to another product")
    services.catalogue.invalidate()
    return saved


@router.get("/api/users")
async def list_users(services: StoreServices = Depends(store_services)) -> dict:
    """Registered shoppers (without their face encodings)."""
    return {"users": await asyncio.to_thread(services.shoppers.summaries)}


@router.delete("/api/users/{user_id}", status_code=204)
async def delete_user(user_id: str, services: StoreServices = Depends(store_services)) -> Response:
    """Remove a shopper and their faces."""
    if not await asyncio.to_thread(services.shoppers.delete, user_id):
        raise HTTPException(404, f"user {user_id!r} not found")
    await services.faces.invalidate.remote()
    return Response(status_code=204)
