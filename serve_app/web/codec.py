"""Frame codecs: the same message dicts travel as JSON text frames or as msgpack binary frames."""

from __future__ import annotations

import json
from typing import Any

import msgpack


class DecodeError(ValueError):
    """A frame that is not valid JSON / msgpack."""


def decode(frame: str | bytes) -> Any:
    """Text frames are JSON, binary frames are msgpack; raises DecodeError on malformed input."""
    try:
        if isinstance(frame, str):
            return json.loads(frame)
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:  # deep nesting too
        raise DecodeError(str(exc)) from exc


def encode(message: dict, binary: bool) -> str | bytes:
    """Encode a reply in the encoding of the request it answers."""
    if binary:
        return msgpack.packb(message, use_bin_type=True)
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
