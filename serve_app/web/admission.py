"""Admitting WebSockets within the connection limits, and counting the open ones per stream."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from starlette.websockets import WebSocket

from serve_app.web import codec
from serve_app.web.limits import ConnectionLimiter
from serve_app.web.metrics import StreamMetrics
from serve_app.web.wire import TOO_MANY_CONNECTIONS, WireError


class WebSocketGate:
    """One per ingress replica: every WebSocket of both streams passes it."""

    def __init__(self, limiter: ConnectionLimiter, metrics: StreamMetrics):
        self.limiter, self.metrics = limiter, metrics

    @asynccontextmanager
    async def admitted(self, websocket: WebSocket, stream: str) -> AsyncIterator[bool]:
        """Accept the socket; yields True while it counts against the limits, or False after refusing it
        with a TOO_MANY_CONNECTIONS error frame and close code 1013 (try again later)."""
        address = websocket.client.host if websocket.client else "unknown"
        refused = self.limiter.acquire(address)
        await websocket.accept()
        if refused:
            self.metrics.errors.inc(tags={"stream": stream, "code": TOO_MANY_CONNECTIONS})
            reply = WireError(TOO_MANY_CONNECTIONS, refused + "; retry later").to_message()
            await websocket.send_text(codec.encode(reply, False))
            await websocket.close(code=1013)
            yield False
            return
        self.metrics.connection_opened(stream)
        try:
            yield True
        finally:
            self.limiter.release(address)
            self.metrics.connection_closed(stream)
