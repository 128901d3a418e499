"""The residual monitor gives the same alerts as the implementation it replaced, event for event, on a
demo-plant run with six faults and on SKAB's valve1/0 run: whatever the message size, and when its state
is saved and restored between messages (a resumed session)."""

from __future__ import annotations

import pytest

from tests.support.monitor_replay import recorded_events, replay


@pytest.mark.parametrize("name", ["demo_plant", "skab_valve1_0"])
def test_every_event_matches_the_recorded_run(name):
    recorded = recorded_events(name)
    assert len(recorded) >= 4 and any(e["opened"] for e in recorded)
    assert replay(name) == recorded  # scores too: the same arithmetic in the same order


@pytest.mark.parametrize("name", ["demo_plant", "skab_valve1_0"])
@pytest.mark.parametrize("message_rows", [1, 37, 1000])
def test_message_size_does_not_change_the_events(name, message_rows):
    assert replay(name, message_rows) == recorded_events(name)


@pytest.mark.parametrize("name", ["demo_plant", "skab_valve1_0"])
def test_a_monitor_restored_from_its_saved_state_continues_event_for_event(name):
    assert replay(name, 53, restart_each_message=True) == recorded_events(name)
