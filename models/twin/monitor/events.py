"""What the residual monitor (models.twin.monitor.residual_monitor) and alarm-flood protection
(models.twin.monitor.flood) report, and the buffer the compiled monitor writes its events into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit

SIGNAL_KINDS = ("drift", "spike", "stuck", "missing")  # per target signal
VECTOR_KINDS = ("multivariate", "flood")  # about the session as a whole: their signal is "*"
INPUT_KINDS = ("envelope", "input_level")  # per boundary signal
ALERT_KINDS = SIGNAL_KINDS + VECTOR_KINDS + INPUT_KINDS
KIND_CODE = {kind: code for code, kind in enumerate(ALERT_KINDS)}  # how the compiled monitor names a kind
CONTRIBUTORS = 3  # signals an event names at most


@dataclass
class AlertEvent:
    """An alert opening (`opened`) or clearing on one signal ("*": the residual vector as a whole)."""

    kind: str
    signal: str
    opened: bool
    score: float
    threshold: float
    first_sample: str  # timestamp of the sample where the condition began
    sample: str  # timestamp of the sample that opened or cleared the alert
    contributors: list[str] = field(default_factory=list)  # the signals that contribute most, largest first

    @property
    def message(self) -> str:
        names = ", ".join(self.contributors)
        if self.kind == "flood":
            return (f"alarm flood: {self.score:.0f} alerts within the window (cap {self.threshold:.0f}); further "
                    f"alerts are held back ({names})" if self.opened else
                    f"alarm flood over: {self.score:.0f} alerts were held back ({names})")
        if not self.opened:
            return f"{self.kind} on {self.signal} cleared"
        return {
            "drift": f"{self.signal} drifts away from the twin (EWMA {self.score:.2f} sd, "
                     f"threshold {self.threshold:.2f})",
            "spike": f"{self.signal} spiked to {self.score:.1f} sd from the twin (threshold {self.threshold:.1f})",
            "stuck": f"{self.signal} has not moved for {self.score:.0f} samples while the twin expects it to",
            "missing": f"{self.signal} has had no reading for {self.score:.0f} samples",
            "envelope": f"input {self.signal} is {self.score:.0%} of its training range outside that range: the "
                        "plant has moved where the twin was not trained, its predictions extrapolate",
            "input_level": f"input {self.signal} has moved away from its normal level (EWMA {self.score:.2f} sd, "
                           f"threshold {self.threshold:.2f})",
            "multivariate": f"the residuals move together away from normal (T² {self.score:.1f}, threshold "
            f"{self.threshold:.1f}); most from {names}",
        }[self.kind]


class EventBuffer(NamedTuple):
    """Events of one compiled monitor pass, in order: per event the row, kind code, signal index (-1: the
    vector), opened, first sample and contributor indices (-1: none), and score and threshold."""

    ints: np.ndarray  # [capacity, 5 + CONTRIBUTORS] int64
    floats: np.ndarray  # [capacity, 2] float64
    count: np.ndarray  # [1] int64: events written

    @classmethod
    def empty(cls, capacity: int) -> EventBuffer:
        return cls(np.empty((capacity, 5 + CONTRIBUTORS), np.int64), np.empty((capacity, 2)),
                   np.zeros(1, np.int64))

    def rows(self) -> np.ndarray:
        """The row of each event written."""
        return self.ints[:self.count[0], 0]


@njit(cache=True, nogil=True)
def push(events, row, kind, signal, opened, first, score, threshold, c0, c1, c2) -> None:
    """Append one event (compiled code's side of EventBuffer)."""
    ints, floats, count = events
    k = count[0]
    ints[k, 0], ints[k, 1], ints[k, 2], ints[k, 3], ints[k, 4] = row, kind, signal, opened, first
    ints[k, 5], ints[k, 6], ints[k, 7] = c0, c1, c2
    floats[k, 0], floats[k, 1] = score, threshold
    count[0] = k + 1
