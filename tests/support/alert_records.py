"""Alert records as the twin connection makes them (serve_app.twin.protocol.alert_record), for tests."""

from __future__ import annotations


def stuck_record(opened: bool, shelved: bool, sample: str) -> dict:
    """A `stuck` alert on signal T1 (first seen at s0) opened or cleared at `sample`, held back or not."""
    return {"signal": "T1", "kind": "stuck", "opened": opened, "shelved": shelved, "sample": sample,
            "first_sample": "s0", "message": "stuck"}
