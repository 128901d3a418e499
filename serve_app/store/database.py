"""The store's collections: products, orders and persisted kiosk sessions (shoppers: deployments.shared.mongo)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from deployments.shared.mongo import PUBLIC, connect
from serve_app.store.cart import cart_total


def product_view(doc: dict) -> dict:
    """A product as clients see it: id (the SKU), name, price, yolo_class_id."""
    return {"id": doc["sku"], "name": doc["name"], "price": doc["price"], "yolo_class_id": doc["yolo_class_id"]}


class StoreDatabase:
    """pymongo access to the store database; every method is one short operation."""

    def __init__(self, uri: str, name: str = "streamforge"):
        self.client = connect(uri)
        self.db = self.client[name]

    def ensure_schema(self) -> None:
        """Unique indexes: product SKU and detector class, order id, one order per cart version, session id."""
        self.db.products.create_index([("sku", ASCENDING)], unique=True)
        self.db.products.create_index([("yolo_class_id", ASCENDING)], unique=True)
        self.db.orders.create_index([("order_id", ASCENDING)], unique=True)
        self.db.orders.create_index([("cart_key", ASCENDING)], unique=True)
        self.db.store_sessions.create_index([("session_id", ASCENDING)], unique=True)

    def seed_catalogue(self, path: Path) -> int:
        """Upsert every catalogue product by SKU (idempotent); returns the number of products."""
        products = json.loads(Path(path).read_text())["products"]
        for p in products:
            fields = {k: p[k] for k in ("sku", "name", "price", "yolo_class_id")}
            self.db.products.update_one({"sku": p["sku"]}, {"$set": fields}, upsert=True)
        return len(products)

    def products(self) -> list[dict]:
        return [product_view(p) for p in self.db.products.find({}, PUBLIC).sort("yolo_class_id", ASCENDING)]

    def upsert_product(self, sku: str, name: str, price: float, yolo_class_id: int) -> dict | None:
        """Create or change a product; None when `yolo_class_id` belongs to another SKU."""
        try:
            self.db.products.update_one({"sku": sku}, {"$set": {"sku": sku, "name": name, "price": price,
                                                               "yolo_class_id": yolo_class_id}}, upsert=True)
        except DuplicateKeyError:
            return None
        return product_view(self.db.products.find_one({"sku": sku}, PUBLIC))

    def products_by_class(self) -> dict[int, dict]:
        return {p["yolo_class_id"]: p for p in self.products()}

    # sessions ----------------------------------------------------------------------------------------
    def load_session(self, session_id: str) -> dict | None:
        return self.db.store_sessions.find_one({"session_id": session_id}, PUBLIC)

    def save_session(self, state: dict) -> None:
        self.db.store_sessions.update_one({"session_id": state["session_id"]}, {"$set": state}, upsert=True)

    def delete_sessions_idle_since(self, cutoff: float) -> int:
        return self.db.store_sessions.delete_many({"updated_at": {"$lt": cutoff}}).deleted_count

    # orders ------------------------------------------------------------------------------------------
    def create_order(self, session_id: str, cart_version: int, user: dict, cart: list[dict]) -> tuple[dict, bool]:
        """Write one order for this cart version; (order, created). A repeat returns the first order."""
        cart_key = f"{session_id}:{cart_version}"
        items = [{**line, "line_total": line["price"] * line["quantity"]} for line in cart]
        order = {"order_id": uuid.uuid4().hex, "cart_key": cart_key, "session_id": session_id,
                 "user": {k: user[k] for k in ("id", "name", "phone")}, "items": items,
                 "total": cart_total(cart), "created_at": time.time(), "status": "paid"}
        try:
            self.db.orders.insert_one(dict(order))
            return order, True
        except DuplicateKeyError:
            return self.db.orders.find_one({"cart_key": cart_key}, PUBLIC), False

    def order(self, order_id: str) -> dict | None:
        return self.db.orders.find_one({"order_id": order_id}, PUBLIC)

    def order_count(self, session_id: str) -> int:
        return self.db.orders.count_documents({"session_id": session_id})
