"""The smart store through the real server: detector, face matcher, carts, checkout on the embedded MongoDB."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time

import pymongo

from bench.hostile_images import jpeg_declaring, png_bomb
from models.store.render import jpeg_bytes
from tests.support.kiosk import Kiosk, kiosk
from tests.support.processes import ray_process_pids
from tests.support.server import MAX_FRAME_BYTES
from tests.support.store_frames import (
    as_data_url,
    astronaut_at_kiosk,
    astronaut_photo,
    empty_frame,
    group_face,
    product_frame,
    stranger_at_kiosk,
)
from tests.support.wire import run


def register(server, name="Eileen Collins", phone="0912345678", photo=None, expect=201) -> dict:
    reply = server.api.post(
        "/api/users",
        timeout=60,
        json={"name": name, "phone": phone, "photos": [base64.b64encode(photo or astronaut_photo()).decode()]},
    )
    assert reply.status_code == expect, reply.text
    return reply.json().get("user")


def test_catalogue_is_seeded(server):
    products = server.api.get("/api/products").json()["products"]
    by_class = {p["yolo_class_id"]: p for p in products}
    assert by_class[0]["name"] == "元翠茶" and by_class[0]["price"] == 150
    assert by_class[1]["name"] == "分解茶"
    assert len(products) >= 4 and all(set(p) == {"id", "name", "price", "yolo_class_id"} for p in products)


def test_a_product_seen_each_time_somewhere_else_never_enters_the_cart(server):
    """Detections that do not stay in one place (a busy scene, a detector fooled by texture) are
    reported, but they are not evidence for the cart."""
    import numpy as np

    from models.store.render import catalogue_looks, render_scene

    scene, _ = render_scene(np.random.default_rng(905), catalogue_looks(), size=240, classes=[3], distractors=0)

    def scattered(i: int) -> bytes:  # the product in another quarter of the view in each frame
        frame = np.full((480, 480, 3), 128, np.uint8)
        y, x = 240 * (i % 4 // 2), 240 * (i % 2)
        frame[y:y + 240, x:x + 240] = scene
        return jpeg_bytes(frame)

    async def scenario():
        async with kiosk(server, "cart-scattered") as ws:
            k = Kiosk(ws)
            for i in (0, 3, 1, 2, 0, 3, 1, 2, 0, 3):
                await k.show(scattered(i))
            return k

    k = run(scenario())
    seen = [any(d["class_id"] == 3 for d in frame["detections"]) for frame in k.of("detections")]
    # the detector saw it in 3 of 5 consecutive frames (what a plain k-of-n count would have added) ...
    assert max(sum(seen[i:i + 5]) for i in range(len(seen) - 4)) >= 3, seen
    # ... never twice in the same place: nothing enters the cart
    assert not k.of("product_detected") and not k.of("cart_updated")


def test_product_frames_fill_the_cart_and_empty_frames_do_not(server):
    async def scenario():
        async with kiosk(server, "cart-1") as ws:
            k = Kiosk(ws)
            for seed in range(3):
                await k.show(empty_frame(seed))
            assert not k.of("product_detected")
            for seed in range(5):
                await k.show(product_frame([0], seed=100 + seed), binary=seed % 2 == 1)
            cart = k.of("cart_updated")[-1]
            # stays in view: not added again
            for seed in range(4):
                await k.show(product_frame([0], seed=200 + seed))
            # leaves the view, then a different product comes
            for seed in range(5):
                await k.show(empty_frame(10 + seed))
            for seed in range(5):
                await k.show(product_frame([1], seed=300 + seed))
            return k, cart

    k, first_cart = run(scenario())
    detected = k.of("product_detected")
    assert [d["product"]["yolo_class_id"] for d in detected] == [0, 1]
    assert detected[0]["product"] == {"id": "tea-yuancui", "name": "元翠茶", "price": 150, "yolo_class_id": 0}
    assert first_cart["cart"] == [{"product_id": "tea-yuancui", "name": "元翠茶", "quantity": 1, "price": 150}]
    assert first_cart["total"] == 150
    final = k.of("cart_updated")[-1]
    assert [(item["product_id"], item["quantity"]) for item in final["cart"]] == [("tea-yuancui", 1), ("tea-fenjie", 1)]
    assert all(m["type"] != "error" for m in k.messages)
    boxes = [d for m in k.of("detections") for d in m["detections"]]
    assert boxes and all(len(d["box"]) == 4 and 0 < d["score"] <= 1 for d in boxes)


def test_bad_frames_get_errors_and_the_connection_keeps_working(server):
    bad = [
        (
            "invalid base64",
            json.dumps({"type": "frame", "frame": "data:image/jpeg;base64,@@not-base64@@"}),
            "INVALID_BASE64",
        ),
        (
            "not an image",
            json.dumps({"type": "frame", "frame": base64.b64encode(b"hello, I am text").decode()}),
            "INVALID_IMAGE",
        ),
        (
            "oversize",
            json.dumps({"type": "frame", "frame": base64.b64encode(b"\xff\xd8\xff" + bytes(MAX_FRAME_BYTES)).decode()}),
            "FRAME_TOO_LARGE",
        ),
        ("frame not a string", json.dumps({"type": "frame", "frame": 12}), "INVALID_MESSAGE"),
        ("malformed json", "{not json", "INVALID_JSON"),
        ("unknown type", json.dumps({"type": "teleport"}), "UNKNOWN_MESSAGE_TYPE"),
        ("bad cart index", json.dumps({"type": "cart_remove", "index": 7}), "INVALID_CART_INDEX"),
        ("index not int", json.dumps({"type": "cart_remove", "index": "0"}), "INVALID_MESSAGE"),
        ("binary garbage", b"\x00\x01garbage", "INVALID_IMAGE"),
    ]

    async def scenario():
        async with kiosk(server, "bad-frames") as ws:
            k = Kiosk(ws)
            answers = []
            for _, message, _ in bad:
                await ws.send(message)
                answers.append(await k.recv_until("error"))
                await ws.send(json.dumps({"type": "ping"}))
                await k.recv_until("pong")
            # a truncated JPEG passes the magic check but cannot be decoded
            await ws.send(product_frame([0], seed=1)[:200])
            undecodable = await k.recv_until("error")
            detections = await k.show(product_frame([0], seed=2))
            return answers, undecodable, detections

    answers, undecodable, detections = run(scenario())
    for (name, _, code), reply in zip(bad, answers):
        assert reply["error_code"] == code, (name, reply)
    assert undecodable["error_code"] == "INVALID_IMAGE"
    assert detections["type"] == "detections"


def test_latest_frame_wins_when_a_kiosk_sends_faster_than_the_detector(server):
    jpeg = product_frame([3], seed=9)

    async def scenario():
        async with kiosk(server, "flood-1") as ws:
            k = Kiosk(ws)
            for _ in range(40):  # no waiting: far faster than detection
                await ws.send(jpeg)
            received = []
            while len(received) < 40:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                k.messages.append(message)
                if message["type"] == "frame_received":
                    received.append(message)
            await ws.send(json.dumps({"type": "ping"}))
            await k.recv_until("pong")
            return k, received

    k, received = run(scenario())
    dropped = received[-1]["dropped_frames"]
    processed = len(k.of("detections"))
    assert dropped > 0 and processed + dropped <= 40
    assert [r["dropped_frames"] for r in received] == sorted(r["dropped_frames"] for r in received)


def test_face_login_checkout_and_exactly_one_order_under_concurrency(server):
    user = register(server)
    assert server.api.post("/api/checkout", json={"session_id": "shopper-1"}).status_code == 400

    async def scenario():
        async with kiosk(server, "shopper-1") as ws:
            k = Kiosk(ws)
            for _ in range(15):
                await k.show(astronaut_at_kiosk())
                await asyncio.sleep(0.25)
                if k.of("face_detected"):
                    break
            else:
                await k.recv_until("face_detected", timeout=10)
            for seed in range(5):
                await k.show(product_frame([1], seed=400 + seed))
            if not k.of("cart_updated"):
                await k.recv_until("cart_updated")
            return k

    k = run(scenario())
    assert k.of("face_detected")[0]["user"] == user
    assert k.of("cart_updated")[-1]["total"] > 0

    async def checkout_many():
        async with server.async_api() as http:
            return await asyncio.gather(*(http.post("/api/checkout", json={"session_id": "shopper-1"})
                                          for _ in range(20)))

    replies = run(checkout_many())
    ok = [r for r in replies if r.status_code == 200]
    assert len(ok) == 1 and all(r.status_code == 400 for r in replies if r is not ok[0])
    body = ok[0].json()
    assert body["success"] is True and body["transaction_id"]
    order = server.api.get(f"/api/orders/{body['transaction_id']}").json()
    last_cart = k.of("cart_updated")[-1]["cart"]
    assert "tea-fenjie" in [line["product_id"] for line in last_cart]
    assert order["user"] == user
    assert [{key: i[key] for key in ("product_id", "name", "quantity", "price")} for i in order["items"]] == last_cart
    assert order["total"] == sum(i["price"] * i["quantity"] for i in order["items"])
    orders = pymongo.MongoClient(server.mongo_uri)["streamforge"]["orders"]
    assert orders.count_documents({"session_id": "shopper-1"}) == 1
    assert server.api.post("/api/checkout", json={"session_id": "shopper-1"}).status_code == 400


def test_unregistered_face_is_not_matched_and_a_face_registers_once(server):
    someone = jpeg_bytes(group_face(3, 1.0, 320))
    register(server, name="Someone Else", phone="0987654321", photo=someone)  # the gallery is not empty
    register(server, name="Same Face", phone="0911222333", photo=jpeg_bytes(group_face(3, 0.6, 400)), expect=409)

    async def scenario():
        async with kiosk(server, "stranger-1") as ws:
            k = Kiosk(ws)
            for _ in range(8):
                await k.show(stranger_at_kiosk())
                await asyncio.sleep(0.3)
            return k

    assert not run(scenario()).of("face_detected")


def test_registration_rejects_bad_photos(server):
    api = "/api/users"
    no_face = base64.b64encode(empty_frame(3)).decode()
    assert (
        server.api.post(api, json={"name": "A", "phone": "0911111111", "photos": [no_face]}, timeout=60).status_code
        == 422
    )
    assert server.api.post(api, json={"name": "A", "phone": "0911111111", "photos": ["%%%"]}).status_code == 422
    assert server.api.post(api, json={"name": "A", "phone": "0911111111", "photos": []}).status_code == 422
    text = base64.b64encode(b"plain text").decode()
    assert server.api.post(api, json={"name": "A", "phone": "0911111111", "photos": [text]}).status_code == 422


def test_cart_survives_reconnect_and_session_actor_restart(server):
    async def fill():
        async with kiosk(server, "keeper-1") as ws:
            k = Kiosk(ws)
            for seed in range(5):
                await k.show(product_frame([2], seed=500 + seed))
            return k.of("cart_updated")[-1]

    async def reconnect():
        async with kiosk(server, "keeper-1") as ws:
            k = Kiosk(ws)
            return await k.recv_until("cart_updated")

    cart = run(fill())
    assert cart["cart"][0]["product_id"] == "tea-oolong"
    assert run(reconnect())["cart"] == cart["cart"]
    pids = ray_process_pids(server, "ray::StoreSessionShard")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # Ray restarts the actors; the first calls may fail while they come back
        try:
            restored = run(reconnect())
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert restored["cart"] == cart["cart"]
    assert set(ray_process_pids(server, "ray::StoreSessionShard")).isdisjoint(pids)


def test_kiosk_page_and_origin_check(server):
    page = server.api.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    same_origin = server.api.get("/api/products", headers={"Origin": server.http})
    assert same_origin.status_code == 200
    foreign = server.api.post("/api/checkout", json={"session_id": "shopper-1"}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "origin" in foreign.json()["error"]


def test_concurrent_face_work_does_not_crash_the_face_matcher(server):
    """dlib is not thread-safe: registrations while kiosks stream faces must all get proper answers."""
    no_face = base64.b64encode(empty_frame(4)).decode()

    async def scenario():
        async with kiosk(server, "busy-faces") as ws, server.async_api() as http:
            k = Kiosk(ws)
            posts = [http.post("/api/users", json={"name": f"N{i}", "phone": "0911000000", "photos": [no_face]})
                     for i in range(4)]

            async def stream_faces():
                for _ in range(3):
                    await k.show(stranger_at_kiosk())

            replies, _ = await asyncio.gather(asyncio.gather(*posts), stream_faces())
            return replies

    assert [r.status_code for r in run(scenario())] == [422] * 4


def test_images_declaring_too_many_pixels_are_refused_before_decoding(server):
    bombs = [png_bomb(30000, 30000), jpeg_declaring(20000, 20000), jpeg_declaring(4097, 4096)]

    async def scenario():
        async with kiosk(server, "pixel-bombs") as ws:
            k = Kiosk(ws)
            replies = []
            for bomb in bombs:
                await ws.send(bomb)  # binary frame
                replies.append(await k.recv_until("error"))
                await ws.send(json.dumps({"type": "frame", "frame": as_data_url(bomb)}))
                replies.append(await k.recv_until("error"))
            return replies, await k.show(product_frame([0], seed=4))

    replies, detections = run(scenario())
    assert [r["error_code"] for r in replies] == ["IMAGE_TOO_LARGE"] * 6
    assert replies[4]["details"] == {"max_pixels": 4096 * 4096, "width": 4097, "height": 4096}
    assert detections["type"] == "detections"  # the connection kept working
    photo = server.api.post("/api/users", json={"name": "Bomb", "phone": "0912345678",
                                                "photos": [base64.b64encode(png_bomb(30000, 30000)).decode()]})
    assert photo.status_code == 413 and "pixels" in photo.text


def test_face_work_of_a_closed_kiosk_is_cancelled_with_it(server):
    reply = server.api.post("/api/users", json={"name": "Eileen Collins", "phone": "0912345678",
                                                "photos": [base64.b64encode(astronaut_photo()).decode()]})
    assert reply.status_code in (201, 409)  # registered here or by an earlier test

    async def scenario():
        async with kiosk(server, "gone-before-login") as ws:
            await ws.send(astronaut_at_kiosk())  # starts face recognition (tens of ms at least) ...
        # ... and the kiosk is gone before it ends
        await asyncio.sleep(3)

    run(scenario())
    session = server.api.get("/api/store/sessions/gone-before-login").json()
    assert session["user"] is None  # nobody logged in to a kiosk that was no longer there
