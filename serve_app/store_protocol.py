"""Wire format of the smart-store kiosk stream (PROTOCOL.md section 2): flat JSON objects."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from serve_app.cart import cart_total
from serve_app.twin_protocol import WireError

JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


class StoreError:
    """`error_code` values of the store stream."""

    INVALID_JSON = "INVALID_JSON"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    INVALID_BASE64 = "INVALID_BASE64"
    INVALID_IMAGE = "INVALID_IMAGE"
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    INVALID_CART_INDEX = "INVALID_CART_INDEX"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    DETECTION_ERROR = "DETECTION_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"


def error(code: str, message: str, details: dict | None = None) -> dict:
    return WireError(code, message, details).to_message()


def frame_bytes(frame: Any, max_bytes: int) -> bytes:
    """The image bytes of a `frame` field: base64, with or without a `data:image/...;base64,` prefix."""
    if not isinstance(frame, str) or not frame:
        raise WireError(StoreError.INVALID_MESSAGE, "`frame` must be a base64 string")
    if frame.startswith("data:"):
        header, _, frame = frame.partition(",")
        if ";base64" not in header:
            raise WireError(StoreError.INVALID_BASE64, "data URL is not base64-encoded")
    if len(frame) > (max_bytes * 4) // 3 + 4:
        raise WireError(StoreError.FRAME_TOO_LARGE, f"frame exceeds {max_bytes} bytes", {"max_bytes": max_bytes})
    try:
        data = base64.b64decode(frame, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(StoreError.INVALID_BASE64, "`frame` is not valid base64") from None
    return checked_image(data, max_bytes)


def checked_image(data: bytes, max_bytes: int) -> bytes:
    """Reject frames that are too large or not JPEG/PNG before they reach the detector."""
    if len(data) > max_bytes:
        raise WireError(StoreError.FRAME_TOO_LARGE, f"frame exceeds {max_bytes} bytes", {"max_bytes": max_bytes})
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise WireError(StoreError.INVALID_IMAGE, "frame is not a JPEG or PNG image")
    return data


def cart_updated(state: dict) -> dict:
    cart = [{k: line[k] for k in ("product_id", "name", "quantity", "price")} for line in state["cart"]]
    return {"type": "cart_updated", "cart": cart, "total": cart_total(cart)}


def face_detected(user: dict) -> dict:
    return {"type": "face_detected", "user": {k: user[k] for k in ("id", "name", "phone")}}
