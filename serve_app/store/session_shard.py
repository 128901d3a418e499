"""Store session shard actor: kiosk sessions (recognised user, cart) of many kiosks in one process.

Every change is written through to MongoDB, so a session survives a reconnect, a restart of this actor
(its state is loaded back lazily) and a restart of the server. Actor methods run one at a time, so two
checkouts of one cart are serialised here; the unique `cart_key` index guards the rest.
"""

from __future__ import annotations

import time

from serve_app.settings import AppSettings
from serve_app.store.cart import add_units
from serve_app.store.database import StoreDatabase


class StoreSessionShard:
    """Plain class; the ingress runs it as a named, restartable Ray actor (see serve_app.store.sessions)."""

    def __init__(self, settings: AppSettings, mongo_uri: str):
        self.db = StoreDatabase(mongo_uri)
        self.configure(settings)
        self.sessions: dict[str, dict] = {}
        self.last_reap = 0.0

    def configure(self, settings: AppSettings) -> None:
        """Take new settings (a redeploy with other `args`); sessions are kept."""
        self.idle_ttl_s = settings.store.session_ttl_s

    def _state(self, session_id: str) -> dict:
        state = self.sessions.get(session_id) or self.db.load_session(session_id)
        if state is None:
            now = time.time()
            state = {"session_id": session_id, "user": None, "cart": [], "cart_version": 0,
                     "connected_at": now, "updated_at": now}
        self.sessions[session_id] = state
        return state

    def _save(self, state: dict) -> dict:
        state["updated_at"] = time.time()
        self.db.save_session(state)
        self._reap()
        return state

    def _reap(self) -> None:
        now = time.time()
        if now - self.last_reap < min(30.0, self.idle_ttl_s / 2):
            return
        self.last_reap = now
        cutoff = now - self.idle_ttl_s
        for sid in [s for s, v in self.sessions.items() if v["updated_at"] < cutoff]:
            del self.sessions[sid]
        self.db.delete_sessions_idle_since(cutoff)

    def open(self, session_id: str) -> dict:
        """The session's state (created if new), marked as active now."""
        return self._save(self._state(session_id))

    def get(self, session_id: str) -> dict | None:
        return self.sessions.get(session_id) or self.db.load_session(session_id)

    def set_user(self, session_id: str, user: dict) -> dict:
        state = self._state(session_id)
        state["user"] = user
        return self._save(state)

    def add(self, session_id: str, product: dict, units: int) -> dict:
        state = self._state(session_id)
        state["cart"] = add_units(state["cart"], product, units)
        return self._save(state)

    def remove(self, session_id: str, index: int) -> dict | None:
        """Remove cart line `index`; None when there is no such line."""
        state = self._state(session_id)
        if not 0 <= index < len(state["cart"]):
            return None
        del state["cart"][index]
        return self._save(state)

    def checkout(self, session_id: str) -> tuple[dict | None, str | None]:
        """Write one order for the cart and empty it: (order, None), or (None, why it was refused)."""
        state = self.get(session_id)
        if state is None:
            return None, f"unknown session {session_id!r}"
        self.sessions[session_id] = state
        if not state["user"]:
            return None, "no face recognised in this session: the shopper must log in first"
        if not state["cart"]:
            return None, "the cart is empty"
        order, _ = self.db.create_order(session_id, state["cart_version"], state["user"], state["cart"])
        state["cart"], state["cart_version"] = [], state["cart_version"] + 1
        self._save(state)
        return order, None
