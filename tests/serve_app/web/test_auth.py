"""Tokens, route permissions and limits as plain objects (the server-level checks are in test_security)."""

from __future__ import annotations

import time

import pytest

from serve_app.web.access import permitted
from serve_app.web.auth import ADMIN, KIOSK, LOCAL, TWIN, Authenticator, AuthSettings, Principal
from serve_app.web.limits import ConnectionLimiter, KeyedRateLimiter, TokenBucket

SECRET = "s" * 40


def authenticator(**fields) -> Authenticator:
    return Authenticator(
        AuthSettings(enabled=True, admin_tokens=["adm"], client_tokens=["cli"], secret=SECRET, **fields)
    )


def test_tokens_map_to_roles():
    auth = authenticator()
    assert auth.principal("adm") == Principal(ADMIN)
    assert auth.principal("cli") == Principal(TWIN)
    assert auth.principal("nope") is None and auth.principal(None) is None
    token, expires = auth.kiosk_token("kiosk-1.a:b", 600)
    assert auth.principal(token) == Principal(KIOSK, "kiosk-1.a:b") and expires > time.time()


def test_kiosk_tokens_need_the_secret_and_expire():
    auth = authenticator()
    token, _ = auth.kiosk_token("kiosk-1", 600)
    other = Authenticator(AuthSettings(enabled=True, admin_tokens=["x"], secret="t" * 40))
    assert other.principal(token) is None  # signed with another secret
    payload, _, signature = token.rpartition(".")
    assert auth.principal(payload.replace("kiosk-1", "kiosk-2") + "." + signature) is None
    expired = Authenticator(AuthSettings(enabled=True, admin_tokens=["adm"], secret=SECRET))
    old_payload = f"k1.kiosk-1.{int(time.time()) - 5}"
    assert expired.principal(f"{old_payload}.{expired._signature(old_payload)}") is None
    capped, expires = authenticator(kiosk_token_max_ttl_s=60).kiosk_token("k", 10**9)
    assert expires <= time.time() + 61


def test_auth_on_needs_an_admin_token_and_a_long_secret(monkeypatch):
    with pytest.raises(ValueError, match="admin token"):
        Authenticator(AuthSettings(enabled=True, secret=SECRET))
    with pytest.raises(ValueError, match="32 characters"):
        Authenticator(AuthSettings(enabled=True, admin_tokens=["a"], secret="short"))
    monkeypatch.setenv("STREAMFORGE_ADMIN_TOKENS", "env-admin, second")
    monkeypatch.setenv("STREAMFORGE_AUTH_SECRET", SECRET)
    auth = Authenticator(AuthSettings(enabled=True))
    assert auth.principal("second") == Principal(ADMIN)
    assert Authenticator(AuthSettings()).principal(None) == Principal(LOCAL)  # auth off: loopback only


@pytest.mark.parametrize("principal,method,path,allowed", [
    (Principal(TWIN), "WEBSOCKET", "/api/v1/inference/stream", True),
    (Principal(TWIN), "GET", "/api/v1/alerts", True),
    (Principal(TWIN), "WEBSOCKET", "/ws/k1", False),
    (Principal(TWIN), "GET", "/api/users", False),
    (Principal(KIOSK, "k1"), "WEBSOCKET", "/ws/k1", True),
    (Principal(KIOSK, "k1"), "WEBSOCKET", "/ws/k2", False),
    (Principal(KIOSK, "k1"), "GET", "/api/store/sessions/k2", False),
    (Principal(KIOSK, "k1"), "POST", "/api/checkout", True),
    (Principal(KIOSK, "k1"), "PUT", "/api/products/x", False),
    (Principal(KIOSK, "k1"), "GET", "/docs", False),
    (Principal(KIOSK, "k1"), "GET", "/static/kiosk.js", True),
    (Principal(ADMIN), "DELETE", "/api/users/u", True),
    (Principal(ADMIN), "GET", "/some/new/route", True),
    (Principal(TWIN), "GET", "/some/new/route", False),
])
def test_route_permissions(principal, method, path, allowed):
    assert permitted(principal, method, path) is allowed


def test_token_bucket_allows_bursts_then_the_rate():
    bucket = TokenBucket(rate=100.0, burst=5)
    assert all(bucket.take() for _ in range(5)) and not bucket.take()
    time.sleep(0.05)  # ~5 tokens come back
    assert bucket.take()


def test_keyed_limiter_tracks_each_address_and_forgets_old_ones():
    limiter = KeyedRateLimiter(rate=0.001, burst=1, max_keys=2)
    assert limiter.allow("a") and not limiter.allow("a") and limiter.allow("b")
    assert limiter.allow("c")  # "a" is evicted...
    assert limiter.allow("a")  # ...and starts with a full bucket again


def test_connection_limiter_counts_in_all_and_per_address():
    limiter = ConnectionLimiter(max_total=3, max_per_address=2)
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    assert "per client address" in limiter.acquire("a")
    assert limiter.acquire("b") is None
    assert "limit of 3" in limiter.acquire("c")
    limiter.release("a")
    assert limiter.acquire("c") is None and limiter.total == 3
