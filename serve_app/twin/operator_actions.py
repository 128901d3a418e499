"""What operators do to the twin's alarm system, recorded in MongoDB with who, when and why.

- `alert_shelves`: an alert of one session shelved until a time (ISA-18.2 shelving): its openings are
  recorded but not pushed to the client meanwhile, and when the time runs out an alert whose condition
  still holds is announced again.
- `monitor_calibrations`: versions of an ensemble's monitor calibration on top of its manifest (version
  0): a window of operation accepted as the new normal, or an applied recalibration proposal. The newest
  version not rolled back is in force; a rollback marks it rolled back, so the one before is in force again.

Every ingress replica keeps the shelves and versions in force in memory, refreshed every REFRESH_S (and
at once after a change made through it), so its connections apply them without a database round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from deployments.shared.mongo import PUBLIC, connect
from serve_app.web.wire import now_iso

logger = logging.getLogger("streamforge.operator")
REFRESH_S = 1.0
MAX_SHELVE_S = 24 * 3600.0  # a shelved alert always comes back within a day


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


class OperatorActions:
    """Shelves and calibration versions in MongoDB, with this replica's cache of those in force."""

    def __init__(self, uri: str, name: str = "streamforge"):
        db = connect(uri)[name]
        self.shelves, self.calibrations = db.alert_shelves, db.monitor_calibrations
        self._shelved: dict[str, dict[tuple[str, str], float]] = {}  # session -> {(signal, kind): until (epoch s)}
        self._in_force: dict[str, tuple[int, dict]] = {}  # ensemble -> (version, MonitorCalibration as a dict)
        self._refresher: asyncio.Task | None = None

    def ensure_schema(self) -> None:
        self.shelves.create_index([("session_id", ASCENDING), ("until", DESCENDING)])
        self.calibrations.create_index([("ensemble", ASCENDING), ("version", DESCENDING)], unique=True)

    async def start(self) -> None:
        """Read what is in force now, the first time, and keep it fresh from then on (idempotent)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_periodically())
            await self._refreshed()

    async def _refreshed(self) -> None:
        try:
            await asyncio.to_thread(self.refresh)
        except Exception as exc:  # the database is down: keep what was in force
            logger.warning("could not refresh shelves and calibrations: %s", exc)

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self._refreshed()

    def refresh(self) -> None:
        """Read the shelves and calibration versions in force now."""
        shelved: dict[str, dict[tuple[str, str], float]] = {}
        for doc in self.shelves.find({"until": {"$gt": time.time()}}, {"_id": 0, "session_id": 1, "signal": 1,
                                                                         "kind": 1, "until": 1}):
            held = shelved.setdefault(doc["session_id"], {})
            key = (doc["signal"], doc["kind"])
            held[key] = max(held.get(key, 0.0), doc["until"])
        in_force: dict[str, tuple[int, dict]] = {}
        for doc in self.calibrations.find({"rolled_back": None}, {"_id": 0, "ensemble": 1, "version": 1,
                                                                  "calibration": 1}).sort("version", DESCENDING):
            in_force.setdefault(doc["ensemble"], (doc["version"], doc["calibration"]))
        self._shelved, self._in_force = shelved, in_force

    def shelved(self, session_id: str) -> dict[tuple[str, str], float]:
        """The session's shelved alerts {(signal, kind): until (epoch s)} in force now."""
        now = time.time()
        return {key: until for key, until in self._shelved.get(session_id, {}).items() if until > now}

    def shelve(self, session_id: str, signal: str, kind: str, seconds: float, by: str, reason: str) -> dict:
        """Shelve the session's alert for `seconds` (at most MAX_SHELVE_S); the record."""
        now = time.time()
        until = now + min(seconds, MAX_SHELVE_S)
        record = {"session_id": session_id, "signal": signal, "kind": kind, "until": until, "until_iso": _iso(until),
                  "by": by, "at": now_iso(), "reason": reason}
        self.shelves.insert_one(dict(record))
        self.refresh()
        return record

    def shelves_of(self, session_id: str) -> list[dict]:
        """The session's shelves in force now, newest first."""
        return list(self.shelves.find({"session_id": session_id, "until": {"$gt": time.time()}}, PUBLIC)
                    .sort("until", DESCENDING))

    def calibration(self, ensemble: str) -> tuple[int, dict | None]:
        """(version, calibration) in force for the ensemble; (0, None): its manifest's."""
        return self._in_force.get(ensemble, (0, None))

    def add_version(self, ensemble: str, calibration: dict, action: str, by: str, reason: str, details: dict) -> int:
        """Put a new calibration in force for the ensemble (`action`: what made it); its version."""
        based_on = self.calibration(ensemble)[0]
        while True:
            newest = self.calibrations.find_one({"ensemble": ensemble}, sort=[("version", DESCENDING)])
            version = (newest["version"] if newest else 0) + 1
            try:
                self.calibrations.insert_one({"ensemble": ensemble, "version": version, "based_on": based_on,
                                              "action": action, "by": by, "at": now_iso(), "reason": reason,
                                              "rolled_back": None, "calibration": calibration, **details})
                break
            except DuplicateKeyError:  # another replica took that number: the next one
                continue
        self.refresh()
        return version

    def rollback(self, ensemble: str, by: str, reason: str) -> tuple[int, int] | None:
        """Roll the version in force back: (the version rolled back, the one in force now); None when the
        manifest's calibration is in force (nothing to roll back)."""
        current = self.calibrations.find_one({"ensemble": ensemble, "rolled_back": None},
                                             sort=[("version", DESCENDING)])
        if current is None:
            return None
        self.calibrations.update_one({"_id": current["_id"]},
                                     {"$set": {"rolled_back": {"by": by, "at": now_iso(), "reason": reason}}})
        self.refresh()
        return current["version"], self.calibration(ensemble)[0]

    def versions(self, ensemble: str) -> list[dict]:
        """Every version of the ensemble's calibration, newest first, without the calibration itself."""
        return list(self.calibrations.find({"ensemble": ensemble}, {"_id": 0, "calibration": 0})
                    .sort("version", DESCENDING))
