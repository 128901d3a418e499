"""What a client has heard of its session's alerts: shelved records are held back, the end of a shelving
re-announces where the alert stands, and all of it survives a state() / restore() round trip (a resume)."""

from __future__ import annotations

from models.twin.monitor.residual_monitor import ResidualMonitor
from serve_app.twin.announcements import AlertAnnouncements, SessionAlarms
from tests.support.alert_records import stuck_record

KEY = ("T1", "stuck")  # stuck_record's


def test_a_shelving_that_ends_re_announces_an_alert_still_open_and_one_cleared_meanwhile():
    heard = AlertAnnouncements()
    pushed, back = heard.observe([stuck_record(True, False, "s1")], set(), {KEY}, "s1")
    assert [r["sample"] for r in pushed] == ["s1"] and back == []
    pushed, back = heard.observe([stuck_record(False, True, "s2")], {KEY}, set(), "s2")  # cleared while shelved
    assert pushed == [] and back == []
    resumed = AlertAnnouncements()
    resumed.restore(heard.state())
    pushed, back = resumed.observe([], set(), set(), "s3")  # the shelving ended: the client hears the clearing
    assert pushed == [] and [(r["opened"], r["reannounced"], r["sample"]) for r in back] == [(False, True, "s3")]

    resumed.observe([stuck_record(True, True, "s4")], {KEY}, {KEY}, "s4")  # opened again while shelved
    again = AlertAnnouncements()
    again.restore(resumed.state())
    _, back = again.observe([], set(), {KEY}, "s5")
    assert [(r["opened"], r["first_sample"], r["sample"]) for r in back] == [(True, "s0", "s5")]


def test_a_session_saved_before_announcements_were_kept_restores_its_monitor(demo_repository, demo_ensemble_name):
    manifest = demo_repository.manifest(demo_ensemble_name)
    saved = ResidualMonitor(manifest.target_signals, manifest.monitor)
    alarms = SessionAlarms(ResidualMonitor(manifest.target_signals, manifest.monitor), AlertAnnouncements())
    alarms.restore(saved.state())  # the old format: the monitor's own state
    assert repr(alarms.monitor.state()) == repr(saved.state())  # repr: its NaNs compare equal
    assert alarms.announcements.state()["announced"] == []
    copy = SessionAlarms(ResidualMonitor(manifest.target_signals, manifest.monitor), AlertAnnouncements())
    copy.restore(alarms.state())
    assert repr(copy.state()) == repr(alarms.state())
