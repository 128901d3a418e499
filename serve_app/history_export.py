"""A session's inference history as CSV or JSON, in the original's column layout."""

from __future__ import annotations

import csv
import io
import json

from serve_app.session_shard import HistoryChunk


def _columns(chunks: list[HistoryChunk]) -> tuple[list[str], list[str]]:
    boundary, targets = {}, {}
    for chunk in chunks:
        boundary.update(dict.fromkeys(chunk.boundary_signals))
        targets.update(dict.fromkeys(chunk.target_signals))
    return list(boundary), list(targets)


def history_records(chunks: list[HistoryChunk]) -> list[dict]:
    """One dict per sample: timestamp, latency_ms, boundary {signal: value}, predictions {signal: value}."""
    records = []
    for c in chunks:
        for ts, lat, b, p in zip(c.timestamps, c.latency_ms.tolist(), c.boundary.tolist(), c.predictions.tolist()):
            records.append({"timestamp": ts, "latency_ms": lat, "boundary": dict(zip(c.boundary_signals, b)),
                            "predictions": dict(zip(c.target_signals, p))})
    return records


def history_csv(chunks: list[HistoryChunk]) -> str:
    """CSV with columns timestamp, latency_ms, boundary_<signal>..., prediction_<signal>..."""
    boundary, targets = _columns(chunks)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["timestamp", "latency_ms", *(f"boundary_{s}" for s in boundary), *(f"prediction_{s}" for s in targets)])
    for r in history_records(chunks):
        writer.writerow([r["timestamp"], r["latency_ms"], *(r["boundary"].get(s, "") for s in boundary),
                         *(r["predictions"].get(s, "") for s in targets)])
    return out.getvalue()


def history_json(session_id: str, chunks: list[HistoryChunk]) -> str:
    return json.dumps({"session_id": session_id, "samples": history_records(chunks)})
