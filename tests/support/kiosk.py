"""A kiosk test client for the real server: sends frames, collects what the server says."""

from __future__ import annotations

import asyncio
import json
import time

import websockets

from tests.support.server import ADMIN_TOKEN
from tests.support.store_frames import (
    as_data_url,
)


class Kiosk:
    """A kiosk client: sends frames, collects every server message by type."""

    def __init__(self, ws):
        self.ws, self.messages = ws, []

    async def recv_until(self, kind: str, timeout: float = 20) -> dict:
        return await self.recv_until_any({kind}, timeout)

    async def recv_until_any(self, kinds: set[str], timeout: float = 20) -> dict:
        """Collect messages until one of `kinds` arrives; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic())))
            self.messages.append(message)
            if message["type"] in kinds:
                return message

    async def show(self, jpeg: bytes, binary: bool = False) -> dict:
        """Send one frame and wait until the detector has processed it; returns the detections message."""
        if binary:
            await self.ws.send(jpeg)
        else:
            await self.ws.send(
                json.dumps({"type": "frame", "frame": as_data_url(jpeg), "timestamp": "2026-01-01T00:00:00Z"})
            )
        return await self.recv_until("detections")

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


def kiosk(server, session_id: str):
    return websockets.connect(f"{server.ws}/ws/{session_id}", max_size=2**24,
                              additional_headers=server.headers(ADMIN_TOKEN))
