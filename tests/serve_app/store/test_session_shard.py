"""Store session shard and database logic against the embedded MongoDB started with the test server."""

import json
import time

from serve_app.settings import PROJECT_ROOT, AppSettings
from serve_app.store.database import StoreDatabase
from serve_app.store.session_shard import StoreSessionShard

TEA = {"id": "tea-yuancui", "name": "元翠茶", "price": 150, "yolo_class_id": 0}


def test_catalogue_seed_is_idempotent(server):
    db = StoreDatabase(server.mongo_uri)
    before = db.products()
    catalogue = json.loads((PROJECT_ROOT / "configs" / "catalogue.json").read_text())["products"]
    assert db.seed_catalogue(PROJECT_ROOT / "configs" / "catalogue.json") == len(catalogue)
    assert db.products() == before  # (other tests may have added products through the admin API)
    assert {p["sku"] for p in catalogue} <= {p["id"] for p in before}


def test_idle_sessions_and_their_carts_are_removed(server):
    shard = StoreSessionShard(AppSettings(store={"session_ttl_s": 1.0}), server.mongo_uri)
    shard.add("idle-1", TEA, 2)
    assert shard.get("idle-1")["cart"][0]["quantity"] == 2
    time.sleep(1.2)
    shard.open("busy-1")  # any write reaps what has been idle too long
    assert shard.get("idle-1") is None
    assert StoreDatabase(server.mongo_uri).load_session("idle-1") is None


def test_a_new_shard_process_sees_persisted_carts(server):
    StoreSessionShard(AppSettings(store={"session_ttl_s": 600}), server.mongo_uri).add("persist-1", TEA, 1)
    fresh = StoreSessionShard(AppSettings(store={"session_ttl_s": 600}), server.mongo_uri)  # as after an actor restart
    assert fresh.get("persist-1")["cart"] == [
        {"product_id": "tea-yuancui", "name": "元翠茶", "quantity": 1, "price": 150}
    ]
    assert fresh.remove("persist-1", 5) is None
    assert fresh.remove("persist-1", 0)["cart"] == []


def test_a_running_shard_takes_new_settings(server):
    shard = StoreSessionShard(AppSettings(store={"session_ttl_s": 600}), server.mongo_uri)
    shard.add("idle-2", TEA, 1)
    shard.configure(AppSettings(store={"session_ttl_s": 1.0}))  # a redeploy with a shorter idle time
    time.sleep(1.2)
    shard.open("busy-2")
    assert shard.get("idle-2") is None
