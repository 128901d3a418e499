"""Who may call what: API keys for admins and twin clients, signed kiosk tokens bound to one session.

Tokens travel as `Authorization: Bearer <token>` or, for browsers (WebSocket handshakes, page loads),
as a `?token=` query parameter. Kiosk tokens are `k1.<session_id>.<expires unix s>.<hmac-sha256>`,
signed with the server's secret and issued by an admin (`POST /api/auth/kiosk-tokens`).
With auth off the server answers only loopback clients (see serve_app.web.access).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

ADMIN, TWIN, KIOSK, LOCAL = "admin", "twin", "kiosk", "local"
KIOSK_TOKEN_PREFIX = "k1"


class AuthSettings(BaseModel):
    """`auth` in configs/serve.yaml; the token lists and secret may also come from the environment
    (STREAMFORGE_ADMIN_TOKENS, STREAMFORGE_CLIENT_TOKENS: comma-separated; STREAMFORGE_AUTH_SECRET)."""

    enabled: bool = False
    admin_tokens: list[str] = []
    client_tokens: list[str] = Field([], description="API keys of twin clients (twin stream and twin HTTP API)")
    secret: str = Field("", description="signs kiosk tokens; at least 32 characters when auth is on")
    allowed_origins: list[str] = Field([], description="browser origins allowed besides the server's own")
    kiosk_token_max_ttl_s: int = Field(7 * 86400, gt=0)

    def with_environment(self) -> "AuthSettings":
        """These settings with tokens and secret from the environment added."""
        def listed(name: str) -> list[str]:
            return [t.strip() for t in os.environ.get(name, "").split(",") if t.strip()]
        return self.model_copy(update={
            "admin_tokens": self.admin_tokens + listed("STREAMFORGE_ADMIN_TOKENS"),
            "client_tokens": self.client_tokens + listed("STREAMFORGE_CLIENT_TOKENS"),
            "secret": os.environ.get("STREAMFORGE_AUTH_SECRET", self.secret),
        })


@dataclass(frozen=True)
class Principal:
    """The caller: its role, for a kiosk the one store session it may use, for a twin client which key."""

    role: str
    session_id: str | None = None
    key_digest: str = field(default="", compare=False)  # admins and twin clients: a digest of their key

    def may_use_store_session(self, session_id: str) -> bool:
        return self.role in (ADMIN, LOCAL) or (self.role == KIOSK and self.session_id == session_id)

    @property
    def identity(self) -> str:
        """Who created a twin session: only this identity (and admins) may use it again."""
        return f"{self.role}:{self.key_digest or self.session_id or ''}"

    @property
    def twin_viewer(self) -> str | None:
        """The identity whose twin sessions this caller may see and use; None: all of them (admin, or
        auth off)."""
        return None if self.role in (ADMIN, LOCAL) else self.identity


class Authenticator:
    """Turns a presented token into a Principal (or None)."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings.with_environment()
        if self.settings.enabled:
            if not self.settings.admin_tokens:
                raise ValueError("auth is enabled but no admin token is configured")
            if len(self.settings.secret) < 32:
                raise ValueError("auth is enabled: set a secret of at least 32 characters (STREAMFORGE_AUTH_SECRET)")
        self._admin = {t.encode() for t in self.settings.admin_tokens}
        self._client = {t.encode() for t in self.settings.client_tokens}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def principal(self, token: str | None) -> Principal | None:
        if not self.enabled:
            return Principal(LOCAL)
        if not token:
            return None
        presented = token.encode()
        digest = hashlib.sha256(presented).hexdigest()[:16]  # names the key in records (who did what), never the key
        if any(hmac.compare_digest(presented, t) for t in self._admin):
            return Principal(ADMIN, key_digest=digest)
        if any(hmac.compare_digest(presented, t) for t in self._client):
            return Principal(TWIN, key_digest=digest)
        session_id = self._kiosk_session(token)
        return Principal(KIOSK, session_id) if session_id else None

    def _signature(self, payload: str) -> str:
        return hmac.new(self.settings.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    def kiosk_token(self, session_id: str, ttl_s: int) -> tuple[str, int]:
        """A token for one kiosk session; (token, expiry unix seconds)."""
        expires = int(time.time()) + min(ttl_s, self.settings.kiosk_token_max_ttl_s)
        payload = f"{KIOSK_TOKEN_PREFIX}.{session_id}.{expires}"
        return f"{payload}.{self._signature(payload)}", expires

    def _kiosk_session(self, token: str) -> str | None:
        payload, _, signature = token.rpartition(".")
        prefix, _, rest = payload.partition(".")
        session_id, _, expires = rest.rpartition(".")
        if prefix != KIOSK_TOKEN_PREFIX or not session_id or not expires.isdigit():
            return None
        if not hmac.compare_digest(signature, self._signature(payload)) or int(expires) < time.time():
            return None
        return session_id
