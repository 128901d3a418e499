"""permessage-deflate on the ingress's WebSockets.

With the HAProxy ingress (configs/serve.env) Ray Serve starts the ingress replica's own uvicorn server
after the deployment's constructor, and passes uvicorn no WebSocket options - so uvicorn's default,
permessage-deflate on, applies to every connection whose client offers it (browsers and the Python
`websockets` client do). For the twin's small messages deflate costs CPU on both ends and saves little
on a LAN. Compression is negotiated, so declining it needs no client change: the client simply gets
plain frames. Behind Ray's default Python proxy the WebSocket ends in the proxy, which this does not reach.
"""

from __future__ import annotations

import uvicorn


def decline_websocket_compression() -> None:
    """uvicorn servers created later in this process decline permessage-deflate."""
    if getattr(uvicorn.Config, "declines_compression", False):
        return

    class Config(uvicorn.Config):
        declines_compression = True

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("ws_per_message_deflate", False)
            super().__init__(*args, **kwargs)

    uvicorn.Config = Config
