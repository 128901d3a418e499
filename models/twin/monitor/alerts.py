"""The open/cleared state of one alert kind across a session's target signals, and the events it emits."""

from __future__ import annotations

import numpy as np

from models.twin.monitor.events import AlertEvent


class SignalAlerts:
    """One alert kind over `targets`: where each condition began, when each open alert's condition began,
    and which alerts are open."""

    def __init__(self, kind: str, targets: list[str]):
        self.kind = kind
        self.targets = targets
        n = len(targets)
        self.began = np.full(n, "", dtype=object)  # timestamp where the condition began ("" while it does not hold)
        self.first = np.full(n, "", dtype=object)  # the condition's start of each open alert
        self.open = np.zeros(n, dtype=bool)

    def switch(self, trigger: np.ndarray, clear: np.ndarray, score: np.ndarray, threshold: np.ndarray, ts: str,
               events: list[AlertEvent]) -> None:
        """Open where `trigger` holds and the alert is closed; close where `clear` holds and it is open."""
        opening, closing = trigger & ~self.open, clear & self.open
        if not (opening.any() or closing.any()):
            return
        for j in np.flatnonzero(opening | closing):
            opened = bool(opening[j])
            if opened:
                self.first[j] = self.began[j] or ts
            events.append(AlertEvent(self.kind, self.targets[j], opened, float(score[j]), float(threshold[j]),
                                     self.first[j], ts, [self.targets[j]]))
        self.open[opening] = True
        self.open[closing] = False
