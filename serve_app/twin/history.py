"""A session's inference history as CSV or JSON, in the column layout of docs/protocol.md.

CSV is rendered by Arrow's CSV writer, column by column in C++ (without the GIL), in parts of
`CSV_PART_ROWS` samples that a response can stream while the replica keeps serving other clients."""

from __future__ import annotations

import io
import json
import math
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as arrow_csv

from serve_app.twin.history_log import HistoryChunk

CSV_PART_ROWS = 2048


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


def history_csv_parts(chunks: list[HistoryChunk], part_rows: int = CSV_PART_ROWS) -> Iterator[bytes]:
    """CSV with columns timestamp, latency_ms, boundary_<signal>..., prediction_<signal>..., actual_<signal>...
    and residual_<signal>... (the last two only when some samples carried measured values; empty where a
    value is missing), as the header and then parts of at most `part_rows` samples."""
    boundary, targets = _columns(chunks)
    measured = targets if any(c.actual is not None for c in chunks) else []
    names = ["timestamp", "latency_ms", *(f"boundary_{s}" for s in boundary), *(f"prediction_{s}" for s in targets),
             *(f"actual_{s}" for s in measured), *(f"residual_{s}" for s in measured)]
    schema = pa.schema([("timestamp", pa.string())] + [(name, pa.float64()) for name in names[1:]])
    yield _csv(schema.empty_table(), header=True)
    for chunk in chunks:
        for start in range(0, len(chunk), part_rows):
            part = chunk.rows(start, start + part_rows)
            columns = [pa.array(part.timestamps, pa.string()), pa.array(part.latency_ms, pa.float64())]
            columns += [_column(part.boundary, part.boundary_signals, s, len(part)) for s in boundary]
            columns += [_column(part.predictions, part.target_signals, s, len(part)) for s in targets]
            columns += [_column(part.actual, part.target_signals, s, len(part)) for s in measured]
            residuals = None if part.actual is None else part.actual - part.predictions
            columns += [_column(residuals, part.target_signals, s, len(part)) for s in measured]
            yield _csv(pa.Table.from_arrays(columns, schema=schema), header=False)


def _column(values: np.ndarray | None, signals: tuple[str, ...], signal: str, rows: int) -> pa.Array:
    """One signal's column of a part: null where the part has no such signal or the value is NaN."""
    if values is None or signal not in signals:
        return pa.nulls(rows, pa.float64())
    return pa.array(values[:, signals.index(signal)], pa.float64(), from_pandas=True)


def _csv(table: pa.Table, header: bool) -> bytes:
    out = io.BytesIO()
    arrow_csv.write_csv(table, out, arrow_csv.WriteOptions(include_header=header))
    return out.getvalue()


def history_csv(chunks: list[HistoryChunk]) -> bytes:
    """The whole CSV (history_csv_parts joined)."""
    return b"".join(history_csv_parts(chunks))


def history_json(session_id: str, chunks: list[HistoryChunk], monitoring: dict | None = None) -> str:
    """The samples, plus the session's residual statistics and alerts when given."""
    return json.dumps({"session_id": session_id, "samples": history_records(chunks), **(monitoring or {})})
