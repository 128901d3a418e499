"""Alarm-system performance figures from an alert stream, after ISA-18.2 (its performance table) and
EEMUA 191: how an operator would judge the alerts, not how well they match faults.

    alerts per 10 min   openings per 10 minutes of plant time (about 1 is manageable, 2 at most)
    standing share      share of plant time with at least one alert open
    stale               alerts open longer than `stale_after_s` (ISA-18.2: 24 h)
    chattering          openings within `chatter_s` (60 s) of the same alert's clearing
    flood share         share of 10-minute periods with more than FLOOD_ALERTS openings
    top-10 share        share of the openings that the ten most frequent alerts make
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable

PERIOD_S = 600.0  # ISA-18.2 counts alarms per 10 minutes
FLOOD_ALERTS = 10  # more openings than this in a 10-minute period is a flood


@dataclass(frozen=True)
class AlertChange:
    """An alert (signal, kind) opening or clearing at plant time `at` (seconds)."""

    at: float
    signal: str
    kind: str
    opened: bool


@dataclass(frozen=True)
class AlarmFigures:
    """The figures of one observation window (see the module docstring)."""

    plant_minutes: float
    alerts_opened: int
    alerts_per_10min: float
    standing_share: float
    stale: int
    chattering: int
    flood_share: float
    top10_share: float

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def alarm_figures(changes: Iterable[AlertChange], start: float, end: float, stale_after_s: float = 86_400.0,
                  chatter_s: float = 60.0) -> AlarmFigures:
    """The figures of the window [start, end) of plant time, from the alert changes in time order (changes
    outside the window count only for what they leave open inside it)."""
    duration = max(end - start, 1e-9)
    open_since: dict[tuple[str, str], float] = {}
    cleared_at: dict[tuple[str, str], float] = {}
    intervals: list[tuple[float, float]] = []  # (from, to) of each alert's open time, clipped to the window
    openings: list[AlertChange] = []
    chattering = stale = 0
    for change in changes:
        key = (change.signal, change.kind)
        if change.opened and key not in open_since:
            open_since[key] = change.at
            if start <= change.at < end:
                openings.append(change)
                chattering += key in cleared_at and change.at - cleared_at[key] <= chatter_s
        elif not change.opened and key in open_since:
            began = open_since.pop(key)
            intervals.append((began, change.at))
            stale += change.at - began > stale_after_s and change.at > start and began < end
            cleared_at[key] = change.at
    for began in open_since.values():  # still open at the end of the changes
        intervals.append((began, max(began, end)))
        stale += end - began > stale_after_s
    periods = max(1, round(duration / PERIOD_S))
    per_period = Counter(min(int((c.at - start) // PERIOD_S), periods - 1) for c in openings)
    most = Counter((c.signal, c.kind) for c in openings).most_common(10)
    return AlarmFigures(
        plant_minutes=duration / 60.0,
        alerts_opened=len(openings),
        alerts_per_10min=len(openings) / duration * PERIOD_S,
        standing_share=_covered(intervals, start, end) / duration,
        stale=stale,
        chattering=chattering,
        flood_share=sum(n > FLOOD_ALERTS for n in per_period.values()) / periods,
        top10_share=sum(n for _, n in most) / len(openings) if openings else 0.0,
    )


def _covered(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Plant time within [start, end) covered by at least one interval."""
    covered, reach = 0.0, start
    for begin, finish in sorted((max(a, start), min(b, end)) for a, b in intervals):
        if finish <= max(begin, reach):  # outside the window, or covered already
            continue
        covered += finish - max(begin, reach)
        reach = finish
    return covered
