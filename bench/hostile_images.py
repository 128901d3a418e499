"""Hostile images for the hardening tests and benches: small files that declare huge pixel counts."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real, valid 1-bit PNG of `width` x `height` black pixels: a few hundred KB on the wire, gigabytes
    once decoded to colour (30000 x 30000 x 3 bytes = 2.7 GB)."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor, parts = zlib.compressobj(9), []
    rows_per_block = max(1, (1 << 22) // len(row))
    block = row * rows_per_block
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(block if height - start >= rows_per_block else row * (height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16 x 16 JPEG whose frame header (SOF0) declares `width` x `height`: a decoder allocates the
    declared size before it finds the data short."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
