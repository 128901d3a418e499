"""MongoDB briefly unreachable (its process stopped with SIGSTOP): the store answers with a clear error,
recovers by itself once the database is back, and the order is written exactly once."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from serve_app.store.database import StoreDatabase

SESSION = "outage-kiosk"
USER = {"id": "outage-user", "name": "Ann", "phone": "0912345678"}
LINE = {"product_id": "tea-yuancui", "name": "元翠茶", "quantity": 2, "price": 150, "yolo_class_id": 0}


def database_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"nx-27017") for a in args[:2]) and str(port).encode() in args:
                return int(proc.name)
    raise AssertionError(f"no embedded MongoDB on port {port}")


@contextmanager
def database_stopped(server):
    """The embedded MongoDB process frozen: connections stay open but nothing answers."""
    pid = database_pid(int(server.mongo_uri.rsplit(":", 1)[1]))
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_store_reports_the_outage_recovers_and_writes_the_order_once(server):
    now = time.time()
    StoreDatabase(server.mongo_uri).save_session({"session_id": SESSION, "user": USER, "cart": [LINE],
                                                  "cart_version": 1, "connected_at": now, "updated_at": now})
    with database_stopped(server):
        down = server.api.post("/api/checkout", json={"session_id": SESSION}, timeout=120)
        products = server.api.get("/api/products", timeout=120)
    assert down.status_code == 503 and "unavailable" in down.json()["error"]
    assert products.status_code == 503
    deadline = time.monotonic() + 60
    while True:  # pymongo reconnects by itself; the first calls may still fail
        reply = server.api.post("/api/checkout", json={"session_id": SESSION}, timeout=60)
        if reply.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert reply.status_code == 200 and reply.json()["order"]["total"] == 300, reply.text
    assert server.api.post("/api/checkout", json={"session_id": SESSION}).status_code == 400  # the cart is empty now
    assert StoreDatabase(server.mongo_uri).order_count(SESSION) == 1
