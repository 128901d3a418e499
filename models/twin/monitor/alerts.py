"""The open/cleared state of one alert kind across a session's target signals, and the compiled switch
that opens and clears it."""

from __future__ import annotations

import numpy as np
from numba import njit

from models.twin.monitor.events import EventBuffer, push

NO_SAMPLE = -1  # `began` while the condition does not hold


class SignalAlerts:
    """One alert kind over n signals: the sample where each condition began, the condition's start of each
    open alert, and which alerts are open (samples are numbered from the session's first)."""

    STATE = ("began", "first", "open")

    def __init__(self, kind: str, n: int):
        self.kind = kind
        self.began = np.full(n, NO_SAMPLE, dtype=np.int64)
        self.first = np.full(n, NO_SAMPLE, dtype=np.int64)
        self.open = np.zeros(n, dtype=np.bool_)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.began, self.first, self.open


@njit(cache=True, nogil=True)
def switch(alerts, j, trigger, clear, score, threshold, kind, row, sample, events: EventBuffer, signal=-1) -> None:
    """Open signal j's alert where `trigger` holds and it is closed; clear it where `clear` holds and it is
    open; record the event, naming the monitor's signal `signal` (-1: j, a target)."""
    began, first, is_open = alerts
    signal = j if signal < 0 else signal
    if trigger and not is_open[j]:
        first[j] = began[j] if began[j] != NO_SAMPLE else sample
        is_open[j] = True
        push(events, row, kind, signal, True, first[j], float(score), float(threshold), signal, -1, -1)
    elif clear and is_open[j]:
        is_open[j] = False
        push(events, row, kind, signal, False, first[j], float(score), float(threshold), signal, -1, -1)
