"""A session's inference history as CSV or JSON, in the column layout of docs/protocol.md."""

from __future__ import annotations

import csv
import io
import json
import math

from serve_app.twin.history_log import HistoryChunk


def _columns(chunks: list[HistoryChunk]) -> tuple[list[str], list[str]]:
    boundary, targets = {}, {}
    for chunk in chunks:
        boundary.update(dict.fromkeys(chunk.boundary_signals))
        targets.update(dict.fromkeys(chunk.target_signals))
    return list(boundary), list(targets)


def history_records(chunks: list[HistoryChunk]) -> list[dict]:
    """One dict per sample: timestamp, latency_ms, boundary {signal: value}, predictions {signal: value}, and
    actual {signal: value | None} for samples sent with measured targets."""
    records = []
    for c in chunks:
        actual = [None] * len(c) if c.actual is None else c.actual.tolist()
        for ts, lat, b, p, a in zip(
            c.timestamps, c.latency_ms.tolist(), c.boundary.tolist(), c.predictions.tolist(), actual
        ):
            record = {"timestamp": ts, "latency_ms": lat, "boundary": dict(zip(c.boundary_signals, b)),
                      "predictions": dict(zip(c.target_signals, p))}
            if a is not None:
                record["actual"] = {t: (None if math.isnan(v) else v) for t, v in zip(c.target_signals, a)}
            records.append(record)
    return records


def history_csv(chunks: list[HistoryChunk]) -> str:
    """CSV with columns timestamp, latency_ms, boundary_<signal>..., prediction_<signal>..."""
    boundary, targets = _columns(chunks)
    measured = targets if any(c.actual is not None for c in chunks) else []
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "timestamp",
            "latency_ms",
            *(f"boundary_{s}" for s in boundary),
            *(f"prediction_{s}" for s in targets),
            *(f"actual_{s}" for s in measured),
        ]
    )
    for r in history_records(chunks):
        actual = r.get("actual", {})
        writer.writerow([r["timestamp"], r["latency_ms"], *(r["boundary"].get(s, "") for s in boundary),
                         *(r["predictions"].get(s, "") for s in targets),
                         *("" if actual.get(s) is None else actual[s] for s in measured)])
    return out.getvalue()


def history_json(session_id: str, chunks: list[HistoryChunk], monitoring: dict | None = None) -> str:
    """The samples, plus the session's residual statistics and alerts when given."""
    return json.dumps({"session_id": session_id, "samples": history_records(chunks), **(monitoring or {})})
