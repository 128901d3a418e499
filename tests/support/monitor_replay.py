"""Recorded residual-monitor runs: the monitor's inputs (predictions, readings, timestamps, calibration) and
the events an earlier implementation produced from them (tests/fixtures/monitor_replay/README.md)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from models.twin.monitor import AlarmFlood, MonitorCalibration, ResidualMonitor
from tests.support.paths import FIXTURES

REPLAYS = FIXTURES / "monitor_replay"
MESSAGE_ROWS = 100  # rows per update, as a client's predict_batch messages arrive


def recorded_events(name: str) -> list[dict]:
    """The events recorded for replay `name`, as plain dicts."""
    return json.loads((REPLAYS / f"{name}.events.json").read_text())


def replay(name: str, message_rows: int = MESSAGE_ROWS, restart_each_message: bool = False) -> list[dict]:
    """Stream replay `name` through today's ResidualMonitor (with alarm-flood protection) and return its
    events as plain dicts. `restart_each_message`: after each message the monitor's state goes through JSON
    into a new monitor, as a resumed session's does."""
    inputs = np.load(REPLAYS / f"{name}.npz")
    calibration = MonitorCalibration.model_validate_json(str(inputs["calibration"]))
    targets = [str(t) for t in inputs["targets"]]
    monitor = ResidualMonitor(targets, calibration, None, AlarmFlood())
    timestamps = [str(t) for t in inputs["timestamps"]]
    events = []
    for start in range(0, len(timestamps), message_rows):
        part = slice(start, start + message_rows)
        events += monitor.update(inputs["predictions"][part], inputs["actual"][part], timestamps[part])
        if restart_each_message:
            saved = json.loads(json.dumps(monitor.state()))
            monitor = ResidualMonitor(targets, calibration, None, AlarmFlood())
            assert monitor.restore(saved)
    return [asdict(e) for e in events]
