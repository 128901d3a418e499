"""Access control for every HTTP request and WebSocket handshake (ASGI middleware).

Tokens: `Authorization: Bearer`, `?token=`, or the `sf_token` cookie that a page opened with `?token=`
sets (HttpOnly, SameSite=Strict) so its scripts, assets and WebSockets are authorised too.

In order: per-address HTTP rate limit (429), request body size (413: by Content-Length, or counted as it
is read for chunked bodies), browser origin (403), token (401 when missing or invalid), route permission
for the token's role (403). With auth off the server
answers loopback clients only. The caller's Principal is left in `request.state.principal` for
endpoints that check ownership (checkout, orders).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from serve_app.web.auth import ADMIN, KIOSK, LOCAL, TWIN, Authenticator, Principal
from serve_app.web.limits import KeyedRateLimiter

logger = logging.getLogger("streamforge.access")

ANYONE = "anyone"  # no token needed
SIGNED_IN = frozenset({ADMIN, TWIN, KIOSK})
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PAGES = {"/", "/twin", "/enroll"}
TOKEN_COOKIE = "sf_token"


@dataclass(frozen=True)
class Rule:
    """Roles allowed on a route; `own_session` routes also need a kiosk token for the session in the path."""

    methods: frozenset[str] | None  # None: any method (and WebSocket)
    path: re.Pattern
    roles: frozenset[str] | str
    own_session: bool = False


def rule(methods: str | None, path: str, roles, own_session: bool = False) -> Rule:
    return Rule(frozenset(methods.split(",")) if methods else None, re.compile(path), roles, own_session)


# first match wins; anything not listed is for admins only
RULES = [
    rule("GET", r"^/healthz$", ANYONE),
    rule("GET,HEAD", r"^/(static/.*)?$", SIGNED_IN),
    rule("GET,HEAD", r"^/twin$", frozenset({ADMIN, TWIN})),
    rule(None, r"^/api/v1/", frozenset({ADMIN, TWIN})),
    rule(None, r"^/ws/(?P<session>[^/]+)$", frozenset({ADMIN, KIOSK}), own_session=True),
    rule("GET", r"^/api/store/sessions/(?P<session>[^/]+)$", frozenset({ADMIN, KIOSK}), own_session=True),
    rule("GET", r"^/api/products$", SIGNED_IN),
    rule("POST", r"^/api/checkout$", frozenset({ADMIN, KIOSK})),  # the endpoint checks the session
    rule("GET", r"^/api/orders/[^/]+$", frozenset({ADMIN, KIOSK})),  # the endpoint checks the session
    rule("POST", r"^/api/users$", frozenset({ADMIN, KIOSK})),  # shoppers register at the kiosk
]


def _first_rule(method: str, path: str) -> tuple[Rule, re.Match] | None:
    for r in RULES:
        if r.methods is not None and method not in r.methods:
            continue
        match = r.path.match(path)
        if match:
            return r, match
    return None


def is_public(method: str, path: str) -> bool:
    """Routes anyone may call without a token (the liveness probe)."""
    found = _first_rule(method, path)
    return found is not None and found[0].roles == ANYONE


def permitted(principal: Principal, method: str, path: str) -> bool:
    """Whether `principal` may call `method path` (method "WEBSOCKET" for handshakes)."""
    if principal.role == LOCAL:
        return True
    found = _first_rule(method, path)
    if found is None:
        return principal.role == ADMIN
    r, match = found
    if r.roles == ANYONE:
        return True
    if principal.role not in r.roles:
        return False
    return not r.own_session or principal.may_use_store_session(match.group("session"))


class AccessControl:
    """ASGI middleware; its settings come from `app.state.access` (an AccessPolicy) set by the ingress."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        policy: AccessPolicy | None = getattr(scope["app"].state, "access", None)
        if policy is None:  # the ingress has not configured access control yet
            return await _deny(scope, send, 503, "starting up")
        status, reason, principal = policy.check(scope)
        if status:
            return await _deny(scope, send, status, reason)
        scope.setdefault("state", {})["principal"] = principal
        if scope["type"] == "http" and _has_unsized_body(scope):
            receive = await _bounded_body(receive, policy.max_body_bytes)
            if receive is None:
                return await _deny(scope, send, 413, f"request body exceeds {policy.max_body_bytes} bytes")
        token = _query_token(scope)
        if (
            token
            and principal is not None
            and principal.role != LOCAL
            and scope["type"] == "http"
            and scope["path"] in PAGES
        ):
            send = _setting_cookie(send, token)  # the page's scripts, assets and sockets then carry it
        return await self.app(scope, receive, send)


class AccessPolicy:
    """Everything AccessControl decides with: authenticator, origins, body size, HTTP rate limit."""

    def __init__(self, authenticator: Authenticator, max_body_bytes: int, http_rate: float, http_burst: float):
        self.auth = authenticator
        self.max_body_bytes = max_body_bytes
        self.http_limiter = KeyedRateLimiter(http_rate, http_burst)

    def check(self, scope) -> tuple[int, str, Principal | None]:
        """(0, "", principal) when the request may proceed, else (HTTP status, reason, None)."""
        client = (scope.get("client") or ("", 0))[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.auth.enabled and client not in LOOPBACK:
            return 403, "auth is off: this server answers loopback clients only", None
        if scope["type"] == "http":
            if not self.http_limiter.allow(client):
                return 429, "too many requests from this address, slow down", None
            if int(headers.get("content-length") or 0) > self.max_body_bytes:
                return 413, f"request body exceeds {self.max_body_bytes} bytes", None
        origin = headers.get("origin")
        if origin and not self._origin_allowed(origin, headers.get("host", "")):
            return 403, f"origin {origin} is not allowed", None
        method = "WEBSOCKET" if scope["type"] == "websocket" else scope["method"]
        if is_public(method, scope["path"]):
            return 0, "", None
        principal = self.auth.principal(_token(scope, headers))
        if principal is None:
            return 401, "a valid token is required (Authorization: Bearer <token> or ?token=)", None
        if not permitted(principal, method, scope["path"]):
            return 403, f"a {principal.role} token may not use {scope['path']}", None
        return 0, "", principal

    def _origin_allowed(self, origin: str, host: str) -> bool:
        return urlsplit(origin).netloc == host or origin in self.auth.settings.allowed_origins


def _has_unsized_body(scope) -> bool:
    """A body without Content-Length (Transfer-Encoding: chunked): its size is known only once read."""
    names = {k.lower() for k, _ in scope.get("headers", [])}
    return b"transfer-encoding" in names and b"content-length" not in names


async def _bounded_body(receive, limit: int):
    """Read the whole body, up to `limit` bytes; a `receive` that replays it, or None when it is larger."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            break

    async def replay():
        return messages.pop(0) if messages else await receive()
    return replay


def _token(scope, headers: dict[str, str]) -> str | None:
    """The presented token: Authorization header, else `?token=`, else the page cookie."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    cookie = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
    return _query_token(scope) or (cookie.value if cookie else None)


def _query_token(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _setting_cookie(send, token: str):
    """`send` that adds the token cookie (HttpOnly, SameSite=Strict) to the response headers."""
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)
    return wrapped


async def _deny(scope, send, status: int, reason: str) -> None:
    logger.info("denied %s %s from %s: %s", scope["type"], scope["path"], (scope.get("client") or ("?",))[0], reason)
    if scope["type"] == "websocket":  # closing before accept answers the handshake with HTTP 403
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        return
    body = json.dumps({"error": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
