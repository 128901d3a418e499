"""Wire format of the smart-store kiosk stream (docs/protocol.md, part 2): flat JSON objects."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from serve_app.store.cart import cart_total
from serve_app.web.wire import TOO_MANY_CONNECTIONS, WireError

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
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_CONNECTIONS = TOO_MANY_CONNECTIONS


def error(code: str, message: str, details: dict | None = None) -> dict:
    return WireError(code, message, details).to_message()


@dataclass(frozen=True)
class ImageLimits:
    """What an image from a client may be: its size in bytes, and its pixels as its header declares them
    (a small PNG can declare 30000 x 30000 pixels and take gigabytes to decode)."""

    max_bytes: int
    max_pixels: int


def frame_bytes(frame: Any, limits: ImageLimits) -> bytes:
    """The image bytes of a `frame` field: base64, with or without a `data:image/...;base64,` prefix."""
    max_bytes = limits.max_bytes
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
    return checked_image(data, limits)


def checked_image(data: bytes, limits: ImageLimits) -> bytes:
    """Reject images that are too large (in bytes, or in pixels as their header declares them) or not
    JPEG/PNG, before anything decodes them."""
    if len(data) > limits.max_bytes:
        raise WireError(StoreError.FRAME_TOO_LARGE, f"frame exceeds {limits.max_bytes} bytes",
                        {"max_bytes": limits.max_bytes})
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise WireError(StoreError.INVALID_IMAGE, "frame is not a JPEG or PNG image")
    size = _declared_size(data)
    if size is None or size[0] * size[1] > limits.max_pixels:
        declared = {} if size is None else {"width": size[0], "height": size[1]}
        raise WireError(StoreError.IMAGE_TOO_LARGE, f"the image declares more than {limits.max_pixels} pixels",
                        {"max_pixels": limits.max_pixels, **declared})
    return data


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image's header (JPEG SOF, PNG IHDR) declares them, read without decoding any
    pixel; None for a size beyond Pillow's own decompression-bomb ceiling."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        return None
    except (OSError, SyntaxError, ValueError):
        raise WireError(StoreError.INVALID_IMAGE, "frame has no readable JPEG or PNG header") from None


def cart_updated(state: dict) -> dict:
    cart = [{k: line[k] for k in ("product_id", "name", "quantity", "price")} for line in state["cart"]]
    return {"type": "cart_updated", "cart": cart, "total": cart_total(cart)}


def face_detected(user: dict) -> dict:
    return {"type": "face_detected", "user": {k: user[k] for k in ("id", "name", "phone")}}
