"""What a twin client has been told about each alert of its session, and what it must hear again when an
operator's shelving of an alert ends.

An alert's openings and clearings while it is shelved are recorded but not pushed; when the shelving ends
the client hears how the alert stands, where that differs from what it last heard: still open (announced
again) or cleared meanwhile. This is kept with the session - its state goes to the session shard together
with the residual monitor's (`SessionAlarms`) - so a connection that resumes the session re-announces as
the old one would have.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.twin.monitor.residual_monitor import ResidualMonitor
from serve_app.web.wire import now_iso

AlertKey = tuple[str, str]  # (signal, kind)


def _key(record: dict) -> AlertKey:
    return record["signal"], record["kind"]


class AlertAnnouncements:
    """One session's alert records as its client last heard them."""

    def __init__(self) -> None:
        self.announced: dict[AlertKey, dict] = {}  # the opening the client last heard, while it stands
        self.last_opened: dict[AlertKey, dict] = {}  # the record of each alert's latest opening, heard or not
        self.shelved: set[AlertKey] = set()  # shelved when the monitor last ran

    def observe(self, records: list[dict], shelved: set[AlertKey], open_now: set[AlertKey],
                timestamp: str) -> tuple[list[dict], list[dict]]:
        """Take one monitor run's alert records (each marked `shelved` or not), the alerts shelved now and the
        alerts open now; (the records to push, the re-announcements of alerts whose shelving ended)."""
        for record in records:
            if record["opened"]:
                self.last_opened[_key(record)] = record
        pushed = [r for r in records if not r["shelved"]]
        self._told(pushed)
        back = self._unshelved(self.shelved - shelved, open_now, timestamp)
        self._told(back)
        self.shelved = set(shelved)
        return pushed, back

    def _told(self, pushed: list[dict]) -> None:
        for record in pushed:
            if record["opened"]:
                self.announced[_key(record)] = record
            else:
                self.announced.pop(_key(record), None)

    def _unshelved(self, ended: set[AlertKey], open_now: set[AlertKey], timestamp: str) -> list[dict]:
        """For each alert whose shelving `ended`, a record where it stands otherwise than the client last
        heard: still open (announced again) or cleared while shelved (`reannounced`: the monitor's own
        record of the change was made while shelved)."""
        records = []
        for key in sorted(ended):
            if key in open_now and key not in self.announced and key in self.last_opened:
                records.append({**self.last_opened[key], "sample": timestamp, "created_at": now_iso(), "shelved": False,
                                "reannounced": True})
            elif key not in open_now and key in self.announced:
                records.append({**self.announced[key], "opened": False, "sample": timestamp, "created_at": now_iso(),
                                "shelved": False, "reannounced": True,
                                "message": f"{key[1]} on {key[0]} cleared while shelved"})
        return records

    def state(self) -> dict:
        """Everything above, as plain data (MongoDB keys may not hold a signal's dots: records in lists)."""
        return {"announced": list(self.announced.values()), "last_opened": list(self.last_opened.values()),
                "shelved": [list(key) for key in sorted(self.shelved)]}

    def restore(self, state: dict) -> None:
        """Continue from a state() of the same session."""
        self.announced = {_key(r): r for r in state["announced"]}
        self.last_opened = {_key(r): r for r in state["last_opened"]}
        self.shelved = {(str(signal), str(kind)) for signal, kind in state["shelved"]}


@dataclass
class SessionAlarms:
    """A session's residual monitor and its announcements, saved with the session as one state
    (serve_app.twin.sessions.MonitorState)."""

    monitor: ResidualMonitor
    announcements: AlertAnnouncements

    def state(self) -> dict:
        return {"detectors": self.monitor.state(), "announcements": self.announcements.state()}

    def restore(self, state: dict) -> None:
        """Continue from a state() (or, from sessions saved before announcements were kept, a monitor's own)."""
        if "detectors" not in state:
            self.monitor.restore(state)
            return
        self.monitor.restore(state["detectors"])
        self.announcements.restore(state["announcements"])
