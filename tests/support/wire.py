"""A raw WebSocket peer for protocol tests: sends exactly the frames a test gives it."""

from __future__ import annotations

import asyncio
import json

import msgpack
import numpy as np
import websockets

from models.twin.plant import BOUNDARY_SIGNALS, simulate
from tests.support.server import CLIENT_TOKEN

STREAM_PATH = "/api/v1/inference/stream"


def run(coro, timeout_s: float = 180):
    """Run a test scenario coroutine to completion, failing it after `timeout_s`."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class Peer:
    def __init__(self, ws):
        self.ws = ws

    async def send(self, message: dict | str | bytes, binary: bool = False) -> None:
        if isinstance(message, (str, bytes)):
            await self.ws.send(message)
        else:
            await self.ws.send(msgpack.packb(message) if binary else json.dumps(message))

    async def recv(self) -> dict:
        frame = await self.ws.recv()
        return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)

    async def ask(self, message: dict | str | bytes, binary: bool = False) -> dict:
        await self.send(message, binary)
        return await self.recv()


def connect(server, query: str = "", token: str | None = None):
    """A twin-stream WebSocket to the test server, with the twin client token unless another is given."""
    return websockets.connect(server.ws + STREAM_PATH + query, max_size=2**26,
                              additional_headers=server.headers(token or CLIENT_TOKEN))


def rows(n: int, seed: int) -> np.ndarray:
    return simulate(n, seed=seed).boundary


def as_signals(row: np.ndarray) -> dict[str, float]:
    return dict(zip(BOUNDARY_SIGNALS, row.tolist()))
