"""Alarm-system figures (ISA-18.2 style) from alert streams with a known answer."""

from __future__ import annotations

import pytest

from models.twin.monitor.alarm_figures import AlertChange, alarm_figures
from models.twin.monitor.flood import plant_seconds


def change(at: float, signal: str, opened: bool, kind: str = "drift") -> AlertChange:
    return AlertChange(at, signal, kind, opened)


def test_standing_share_rate_and_overlap():
    changes = [change(0, "a", True), change(200, "b", True), change(300, "a", False), change(400, "b", False)]
    figures = alarm_figures(changes, 0, 1200)
    assert figures.alerts_opened == 2 and figures.alerts_per_10min == pytest.approx(1.0)
    assert figures.standing_share == pytest.approx(400 / 1200)  # overlapping alerts count once
    assert (figures.stale, figures.chattering, figures.flood_share) == (0, 0, 0.0)


def test_chattering_is_a_reopening_within_a_minute_of_clearing():
    changes = [change(0, "a", True), change(10, "a", False), change(40, "a", True), change(50, "a", False),
               change(200, "a", True), change(210, "a", False), change(215, "b", True)]
    figures = alarm_figures(changes, 0, 600)
    assert figures.chattering == 1  # 40 s after clearing; the opening at 200 s came 150 s after
    assert figures.standing_share == pytest.approx((10 + 10 + 10 + 385) / 600)  # b stays open to the end


def test_stale_alerts_and_alerts_open_before_the_window():
    changes = [change(-1000, "a", True), change(3000, "a", False), change(100, "b", True)]
    figures = alarm_figures(changes, 0, 4000, stale_after_s=3600)
    assert figures.stale == 2  # a: open 4,000 s; b: still open after 3,900 s
    assert figures.alerts_opened == 1  # a opened before the window
    assert figures.standing_share == pytest.approx(1.0)


def test_alerts_after_the_window_do_not_count():
    changes = [change(100, "a", True), change(200, "a", False), change(700, "b", True), change(5000, "b", False),
               change(800, "c", True)]
    figures = alarm_figures(changes, 0, 600, stale_after_s=3600)
    assert (figures.alerts_opened, figures.stale) == (1, 0)
    assert figures.standing_share == pytest.approx(100 / 600)


def test_flood_periods_and_the_ten_most_frequent_alerts():
    changes = []
    for i in range(11):  # 11 openings in the first 10 minutes: a flood
        changes += [change(i * 20, f"s{i % 6}", True), change(i * 20 + 10, f"s{i % 6}", False)]
    changes += [change(700, "s0", True), change(710, "s0", False)]
    figures = alarm_figures(changes, 0, 1200)
    assert figures.flood_share == pytest.approx(0.5)
    assert figures.top10_share == pytest.approx(1.0)  # only 6 distinct alerts
    many = [c for i in range(12) for c in (change(i * 60, f"s{i}", True), change(i * 60 + 1, f"s{i}", False))]
    assert alarm_figures(many, 0, 1200).top10_share == pytest.approx(10 / 12)


def test_plant_time_reads_epoch_seconds_and_iso_8601_naive_as_utc():
    assert plant_seconds("1767225600") == plant_seconds("2026-01-01T00:00:00Z") == 1767225600.0
    assert plant_seconds("2026-01-01T00:00:00") == plant_seconds("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert plant_seconds("sample 7") is None
