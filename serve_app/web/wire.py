"""What both wire protocols share: the `error` frame, the session-id rule and the timestamp format.

Each protocol keeps its own `error_code` values (`serve_app.twin.protocol.ErrorCode`,
`serve_app.store.protocol.StoreError`); both raise and send them as a `WireError`.
"""

from __future__ import annotations

from datetime import datetime, timezone

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"  # the `error_code` of a WebSocket refused by the limits


class WireError(Exception):
    """A request the server answers with an `error` frame; the connection stays open."""

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}

    def to_message(self) -> dict:
        """The `error` frame: {type, error_code, message, details}."""
        return {"type": "error", "error_code": self.code, "message": self.message, "details": self.details}


def now_iso() -> str:
    """The server's UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat()
