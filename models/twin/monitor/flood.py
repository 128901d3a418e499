"""Alarm-flood protection for one monitored session (ISA-18.2 / EEMUA 191 style).

An operator can act on about one alarm per 10 minutes; ten in ten minutes is a flood, and a flood hides
the alarm that matters. `AlarmFlood` passes alert openings on until `max_alerts` have opened within
`window_s` of plant time (the samples' timestamps). The next opening instead opens one `flood` alert
(signal "*") that names the signals involved; further openings - and the clearings of alerts that were
held back - are not passed on while it is open. The flood clears once the openings in the window have
fallen to half the cap; its clearing says how many alerts were held back.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

from models.twin.monitor.events import AlertEvent


class FloodLimits(BaseModel):
    """The cap of one session; a session's `config` may set its own (`alert_flood`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_alerts: int = Field(5, ge=1, le=10_000)
    window_s: float = Field(600.0, gt=0.0, le=7 * 86_400.0)


def plant_seconds(timestamp: str) -> float | None:
    """A sample's timestamp in epoch seconds: a number, or ISO 8601 (UTC when it names no offset); None
    when it is neither."""
    try:
        return float(timestamp)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class AlarmFlood:
    """Filters one session's alert events, in sample order."""

    def __init__(self, limits: FloodLimits | None = None):
        self.limits = limits or FloodLimits()
        self._openings: deque[float] = deque()  # plant times of openings in the window, held back or not
        self._held_back: set[tuple[str, str]] = set()  # (signal, kind) opened during the flood and not yet cleared
        self._signals: list[str] = []  # signals involved in the flood, in order of appearance
        self._count = 0
        self._began = ""

    @property
    def flooding(self) -> bool:
        return bool(self._began)

    def state(self) -> dict:
        """What the filter holds, as plain lists (for `restore`)."""
        return {"openings": list(self._openings), "held_back": sorted(self._held_back), "signals": self._signals,
                "count": self._count, "began": self._began}

    def restore(self, state: dict) -> None:
        """Continue from what `state` returned."""
        self._openings = deque(float(t) for t in state["openings"])
        self._held_back = {(str(s), str(k)) for s, k in state["held_back"]}
        self._signals, self._count, self._began = list(state["signals"]), int(state["count"]), str(state["began"])

    def filter(self, events: list[AlertEvent], timestamp: str) -> list[AlertEvent]:
        """The events of one sample that reach the operator, with the flood alert opening or clearing."""
        if not events and not self.flooding:
            return []
        now = plant_seconds(timestamp)
        if now is None:  # a client's label that is not a time: the server's clock stands in
            now = time.time()
        while self._openings and self._openings[0] <= now - self.limits.window_s:
            self._openings.popleft()
        passed: list[AlertEvent] = []
        flood_began = False
        for event in events:
            key = (event.signal, event.kind)
            if not event.opened:
                if key in self._held_back:
                    self._held_back.discard(key)
                else:
                    passed.append(event)
                continue
            self._openings.append(now)
            if not self.flooding and len(self._openings) <= self.limits.max_alerts:
                passed.append(event)
                continue
            if not self.flooding:
                self._began, self._count, self._signals, flood_began = event.first_sample or timestamp, 0, [], True
            self._held_back.add(key)
            self._count += 1
            self._signals.extend(s for s in event.contributors or [event.signal] if s not in self._signals)
        if flood_began:  # after this sample's openings, so it names all of them
            passed.append(self._flood_event(True, timestamp))
        if self.flooding and len(self._openings) <= self.limits.max_alerts // 2:
            passed.append(self._flood_event(False, timestamp))
            self._began = ""
        return passed

    def _flood_event(self, opened: bool, timestamp: str) -> AlertEvent:
        return AlertEvent("flood", "*", opened, float(len(self._openings) if opened else self._count),
                          float(self.limits.max_alerts), self._began, timestamp, contributors=list(self._signals))
