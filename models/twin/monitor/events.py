"""What the residual monitor (models.twin.monitor.residual_monitor) and alarm-flood protection
(models.twin.monitor.flood) report."""

from __future__ import annotations

from dataclasses import dataclass, field

SIGNAL_KINDS = ("drift", "spike", "stuck", "missing")  # per target signal
VECTOR_KINDS = ("multivariate", "flood")  # about the session as a whole: their signal is "*"
ALERT_KINDS = SIGNAL_KINDS + VECTOR_KINDS


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
            "multivariate": f"the residuals move together away from normal (T² {self.score:.1f}, threshold "
            f"{self.threshold:.1f}); most from {names}",
        }[self.kind]
