"""Authentication, authorisation and limits against the real server (which the tests run with auth on)."""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import websockets

from tests.support.server import (
    ADMIN_TOKEN,
    CLIENT_TOKEN,
    HTTP_BURST,
    HTTP_REQUESTS_PER_S,
    MAX_CONNECTIONS_PER_ADDRESS,
    OTHER_CLIENT_TOKEN,
)
from tests.support.store_frames import empty_frame
from tests.support.wire import Peer, as_signals, connect, rows, run

WS_PATHS = ["/api/v1/inference/stream", "/ws/kiosk-a"]


def every_http_route(server) -> list[tuple[str, str]]:
    """(method, path) of every route in the OpenAPI spec, pages and a static file; path parameters filled."""
    spec = server.api.get("/openapi.json").raise_for_status().json()
    routes = [(m.upper(), path.replace("{", "").replace("}", ""))
              for path, methods in spec["paths"].items() for m in methods]
    return routes + [("GET", "/"), ("GET", "/twin"), ("GET", "/static/kiosk.js"), ("GET", "/docs")]


def kiosk_token(server, session_id: str, ttl_s: int = 3600) -> str:
    reply = server.api.post("/api/auth/kiosk-tokens", json={"session_id": session_id, "ttl_s": ttl_s})
    assert reply.status_code == 201, reply.text
    return reply.json()["token"]


def ws_status(server, path: str, token: str | None) -> int:
    """101 when the handshake is accepted, else the HTTP status it was refused with."""
    async def attempt():
        headers = server.headers(token) if token else {}
        try:
            async with websockets.connect(server.ws + path, additional_headers=headers):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
    return run(attempt())


def test_no_endpoint_answers_without_a_valid_token(server):
    routes = every_http_route(server)
    assert len(routes) >= 20
    for token in (None, "wrong-token", ADMIN_TOKEN + "x"):
        headers = server.headers(token) if token else {}
        for method, path in routes:
            if path == "/healthz":
                continue
            status = httpx.request(method, server.http + path, headers=headers, timeout=30).status_code
            assert status == 401, (token, method, path, status)
        for path in WS_PATHS:
            assert ws_status(server, path, token) == 403, (token, path)
    assert httpx.get(server.http + "/healthz").status_code == 200  # liveness probes stay open


def test_twin_client_token_reaches_the_twin_api_only(server):
    client = httpx.Client(base_url=server.http, headers=server.headers(CLIENT_TOKEN), timeout=30)
    assert client.get("/api/v1/ensembles").status_code == 200
    assert client.get("/twin").status_code == 200
    assert ws_status(server, "/api/v1/inference/stream", CLIENT_TOKEN) == 101
    assert client.get("/api/users").status_code == 403
    assert client.put("/api/products/x", json={"name": "x", "price": 1, "yolo_class_id": 99}).status_code == 403
    assert client.post("/api/checkout", json={"session_id": "kiosk-a"}).status_code == 403
    assert client.post("/api/auth/kiosk-tokens", json={"session_id": "kiosk-a"}).status_code == 403
    assert ws_status(server, "/ws/kiosk-a", CLIENT_TOKEN) == 403


def test_kiosk_token_is_bound_to_its_own_session(server):
    token = kiosk_token(server, "kiosk-a")
    kiosk = httpx.Client(base_url=server.http, headers=server.headers(token), timeout=30)
    assert ws_status(server, "/ws/kiosk-a", token) == 101
    assert ws_status(server, "/ws/kiosk-b", token) == 403
    assert kiosk.get("/api/store/sessions/kiosk-a").status_code == 200
    assert kiosk.get("/api/store/sessions/kiosk-b").status_code == 403
    assert kiosk.post("/api/checkout", json={"session_id": "kiosk-b"}).status_code == 403
    refused = kiosk.post("/api/checkout", json={"session_id": "kiosk-a"})
    assert refused.status_code == 400  # its own session: allowed, but nobody is logged in
    assert kiosk.get("/api/products").status_code == 200
    assert kiosk.get("/api/v1/ensembles").status_code == 403
    assert kiosk.get("/api/users").status_code == 403
    assert ws_status(server, "/api/v1/inference/stream", token) == 403


def test_kiosk_tokens_cannot_be_forged_or_reused_after_expiry(server):
    token = kiosk_token(server, "kiosk-a", ttl_s=60)
    payload, _, signature = token.rpartition(".")
    prefix, session, expires = payload.split(".")
    forged = f"{prefix}.kiosk-b.{expires}.{signature}"  # someone else's session, same signature
    assert ws_status(server, "/ws/kiosk-b", forged) == 403
    longer = f"{prefix}.{session}.{int(expires) + 10**6}.{signature}"
    assert httpx.get(server.http + "/api/store/sessions/kiosk-a", headers=server.headers(longer)).status_code == 401
    expired = f"{prefix}.{session}.{int(time.time()) - 1}.{signature}"
    assert httpx.get(server.http + "/api/products", headers=server.headers(expired)).status_code == 401


def test_page_token_becomes_a_cookie_for_its_scripts_and_sockets(server):
    token = kiosk_token(server, "kiosk-cookie")
    with httpx.Client(base_url=server.http, timeout=30) as browser:
        page = browser.get(f"/?session=kiosk-cookie&token={token}")
        assert page.status_code == 200 and "httponly" in page.headers["set-cookie"].lower()
        assert browser.get("/static/kiosk.js").status_code == 200  # the cookie now authorises it
        assert browser.get("/api/store/sessions/kiosk-b").status_code == 403


def test_admin_manages_products_and_users(server):
    created = server.api.put("/api/products/TEST-SKU", json={"name": "Test tea", "price": 42, "yolo_class_id": 77})
    assert created.status_code == 200 and created.json() == {"id": "TEST-SKU", "name": "Test tea", "price": 42,
                                                             "yolo_class_id": 77}
    clash = server.api.put("/api/products/OTHER-SKU", json={"name": "x", "price": 1, "yolo_class_id": 77})
    assert clash.status_code == 409
    assert (
        server.api.put("/api/products/bad sku!", json={"name": "x", "price": 1, "yolo_class_id": 78}).status_code == 422
    )
    assert any(p["id"] == "TEST-SKU" for p in server.api.get("/api/products").json()["products"])
    users = server.api.get("/api/users").json()["users"]
    assert all("encodings" not in u for u in users)
    assert server.api.delete("/api/users/no-such-user").status_code == 404


def test_admin_retires_an_ensemble(server):
    name = "Ensemble_Retire_20260101_000000"
    shutil.copytree(server.tiny.folder, server.tiny.folder.parent / name)
    assert any(e["ensemble_name"] == name for e in server.api.get("/api/v1/ensembles").json()["ensembles"])
    twin = httpx.Client(base_url=server.http, headers=server.headers(CLIENT_TOKEN), timeout=30)
    assert twin.delete(f"/api/admin/ensembles/{name}").status_code == 403
    assert server.api.delete(f"/api/admin/ensembles/{name}").status_code == 204
    assert server.api.delete(f"/api/admin/ensembles/{name}").status_code == 404
    assert server.api.delete("/api/admin/ensembles/..%2Fresults").status_code in (404, 422)
    assert all(e["ensemble_name"] != name for e in server.api.get("/api/v1/ensembles").json()["ensembles"])

    async def configure():
        async with connect(server) as ws:
            return await Peer(ws).ask({"type": "config", "data": {"ensemble_name": name}})
    assert run(configure())["error_code"] == "ENSEMBLE_NOT_FOUND"
    assert (server.tiny.folder.parent / ".retired").is_dir()


def test_oversized_request_bodies_get_413(server):
    body = b"x" * (12 * 1024 * 1024 + 1)
    reply = server.api.post("/api/users", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 413


def test_chunked_request_bodies_are_counted_and_get_413(server):
    def chunks(total: int, size: int = 1 << 20):  # a generator body: httpx sends it chunked, without Content-Length
        while total > 0:
            yield b"x" * min(size, total)
            total -= size

    oversized = server.api.post("/api/users", content=chunks(12 * 1024 * 1024 + 1),
                                headers={"content-type": "application/json"})
    assert oversized.status_code == 413
    small = server.api.put(
        "/api/products/CHUNKED-1",
        headers={"content-type": "application/json"},
        content=(part for part in [b'{"name": "Chunked tea", ', b'"price": 12, "yolo_class_id": 901}']),
    )
    assert small.status_code == 200, small.text  # a chunked body under the limit reaches the route whole
    assert small.json()["name"] == "Chunked tea"


def test_kiosk_frame_rate_limit_answers_with_an_error(server):
    frame = empty_frame(1)

    async def scenario():
        async with websockets.connect(
            f"{server.ws}/ws/rate-kiosk", additional_headers=server.headers(ADMIN_TOKEN)
        ) as ws:
            for _ in range(150):  # far above 30 frames/s with a burst of 60
                await ws.send(frame)
            replies = []
            while len(replies) < 150:
                message = await asyncio.wait_for(ws.recv(), 60)
                if '"frame_received"' in message or '"RATE_LIMITED"' in message:
                    replies.append(message)
            await ws.send('{"type": "ping"}')
            while '"pong"' not in (message := await asyncio.wait_for(ws.recv(), 60)):
                pass
            return replies
    replies = run(scenario())
    limited = [r for r in replies if '"RATE_LIMITED"' in r]
    assert 40 <= len(limited) <= 100, len(limited)  # ~60 pass at once, the rest refused, the socket stays up


def test_connection_limit_per_address_answers_with_an_error(server):
    async def scenario():
        sockets, refused = [], []
        try:
            for _ in range(MAX_CONNECTIONS_PER_ADDRESS + 5):
                ws = await asyncio.wait_for(connect(server).__aenter__(), 30)
                sockets.append(ws)

            async def first_message(ws):  # an accepted connection says nothing until asked
                try:
                    return await asyncio.wait_for(Peer(ws).recv(), 3)
                except asyncio.TimeoutError:
                    return None
            messages = await asyncio.gather(*(first_message(ws) for ws in sockets))
            refused = [m for m in messages if m is not None]
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        await asyncio.sleep(0.5)
        async with connect(server) as ws:  # once the others close, connections are accepted again
            after = await Peer(ws).ask({"type": "ping"})
        return refused, after
    refused, after = run(scenario())
    assert len(refused) >= 5 and all(m["error_code"] == "TOO_MANY_CONNECTIONS" for m in refused), refused
    assert after["type"] == "error" and after["error_code"] == "INVALID_MESSAGE"  # ping before config: a normal reply


def test_http_flood_from_one_address_gets_429_then_recovers(server):
    async def flood() -> list[int]:
        """Waves of concurrent requests until the address is over its limit (bounded: 40 waves)."""
        statuses: list[int] = []
        async with server.async_api() as http:
            for _ in range(40):
                statuses += [r.status_code for r in await asyncio.gather(*(http.get("/healthz") for _ in range(200)))]
                if 429 in statuses:
                    break
        return statuses
    statuses = run(flood())
    assert set(statuses) <= {200, 429} and 429 in statuses and statuses.count(200) >= HTTP_BURST
    time.sleep(HTTP_BURST / HTTP_REQUESTS_PER_S + 0.5)  # the bucket refills
    assert server.api.get("/api/products").status_code == 200


def test_twin_sessions_belong_to_the_client_that_opened_them(server):
    async def open_session() -> str:
        async with connect(server) as ws:  # CLIENT_TOKEN
            peer = Peer(ws)
            ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name}})
            await peer.ask({"type": "predict", "data": {"boundary_signals": as_signals(rows(1, seed=5)[0])}})
            return ack["session_id"]

    async def resume_as_other(sid: str) -> dict:
        async with connect(server, f"?session_id={sid}", token=OTHER_CLIENT_TOKEN) as ws:
            return await Peer(ws).ask({"type": "config", "data": {"ensemble_name": server.demo.name}})

    sid = run(open_session())
    assert run(resume_as_other(sid))["error_code"] == "SESSION_NOT_FOUND"  # not even told that it exists
    owner, other = (
        httpx.Client(base_url=server.http, headers=server.headers(t)) for t in (CLIENT_TOKEN, OTHER_CLIENT_TOKEN)
    )
    with owner, other:
        assert other.get(f"/api/v1/inference/stream/history/{sid}").status_code == 404
        assert other.post("/api/v1/inference/stream/save", json={"session_id": sid}).status_code == 404
        saved = owner.post("/api/v1/inference/stream/save", json={"session_id": sid})
        assert saved.status_code == 200
        download = saved.json()["download_url"]
        assert owner.get(download).status_code == 200 and other.get(download).status_code == 404
        assert owner.get(f"/api/v1/inference/stream/history/{sid}").status_code == 200
        other_view = other.get("/api/v1/inference/stream/stats").json()
        assert other_view["retained_sessions"] == 0 and other_view["total_predictions"] == 0
        assert owner.get("/api/v1/inference/stream/stats").json()["total_predictions"] >= 1
    assert server.api.get(f"/api/v1/inference/stream/history/{sid}").status_code == 200  # admins see every session
