"""MongoDB below the app: the client settings everyone uses, and the shopper records.

The FaceMatcher deployment reads registered shoppers and the app's registration routes write them, so
their collection lives here, in the lower layer (`serve_app -> deployments -> models`). Every change
bumps a registration version: face caches reload when it moves (a deletion followed by a registration
keeps the shopper count, not the version).
"""

from __future__ import annotations

import time
import uuid

from pymongo import ASCENDING, MongoClient, ReturnDocument

PUBLIC = {"_id": 0}


def connect(uri: str) -> MongoClient:
    """A client that fails fast (5 s) when the server is unreachable instead of hanging a request."""
    return MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=3000, socketTimeoutMS=10000)


class ShopperRecords:
    """The `users` collection (name, phone, face encodings) and its registration version."""

    def __init__(self, uri: str, name: str = "streamforge"):
        db = connect(uri)[name]
        self.users, self.versions = db.users, db.versions

    def ensure_schema(self) -> None:
        """Unique user id."""
        self.users.create_index([("user_id", ASCENDING)], unique=True)

    def _bump_version(self) -> None:
        self.versions.find_one_and_update({"name": "users"}, {"$inc": {"version": 1}}, upsert=True,
                                          return_document=ReturnDocument.AFTER)

    def version(self) -> int:
        """Changes whenever a shopper is registered or deleted."""
        doc = self.versions.find_one({"name": "users"}, PUBLIC)
        return int(doc["version"]) if doc else 0

    def create(self, name: str, phone: str, encodings: list[list[float]]) -> dict:
        """Register a shopper; the stored record (with a new `user_id`)."""
        user = {"user_id": uuid.uuid4().hex, "name": name, "phone": phone, "encodings": encodings,
                "created_at": time.time()}
        self.users.insert_one(dict(user))
        self._bump_version()
        return user

    def all(self) -> list[dict]:
        """Every shopper with their encodings."""
        return list(self.users.find({}, PUBLIC))

    def summaries(self) -> list[dict]:
        """Every shopper without their encodings."""
        return [{"id": u["user_id"], "name": u["name"], "phone": u["phone"], "faces": len(u["encodings"])}
                for u in self.users.find({}, PUBLIC)]

    def delete(self, user_id: str) -> bool:
        """Remove a shopper; False when there was none."""
        deleted = self.users.delete_one({"user_id": user_id}).deleted_count == 1
        if deleted:
            self._bump_version()
        return deleted
