"""A session's inference history as CSV or JSON, in the column layout of docs/protocol.md.

Both are rendered by Arrow column by column in C++ (without the GIL: CSV by its CSV writer, JSON by
joining the text of each column), in parts of `PART_ROWS` samples that a response can stream while the
replica keeps serving other clients."""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv

from serve_app.twin.history_log import HistoryChunk

PART_ROWS = 2048


def _columns(chunks: list[HistoryChunk]) -> tuple[list[str], list[str]]:
    boundary, targets = {}, {}
    for chunk in chunks:
        boundary.update(dict.fromkeys(chunk.boundary_signals))
        targets.update(dict.fromkeys(chunk.target_signals))
    return list(boundary), list(targets)


def history_csv_parts(chunks: list[HistoryChunk], part_rows: int = PART_ROWS) -> Iterator[bytes]:
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


def history_json_parts(session_id: str, chunks: list[HistoryChunk], monitoring: dict | None = None,
                       part_rows: int = PART_ROWS) -> Iterator[bytes]:
    """The JSON document {"session_id", "samples": [...], and the fields of `monitoring` (residual statistics,
    alerts) when given}: its opening, the samples in parts of at most `part_rows`, its end. A sample is
    {"timestamp", "latency_ms", "boundary": {signal: value}, "predictions": {signal: value}, and for samples
    sent with measured values "actual": {signal: value | null}}."""
    yield orjson.dumps({"session_id": session_id})[:-1] + b',"samples":['
    separator = b""
    for chunk in chunks:
        for start in range(0, len(chunk), part_rows):
            yield separator + _json_samples(chunk.rows(start, start + part_rows))
            separator = b","
    yield b"]" + (b"," + orjson.dumps(monitoring, option=orjson.OPT_SERIALIZE_NUMPY)[1:] if monitoring else b"}")


def history_json(session_id: str, chunks: list[HistoryChunk], monitoring: dict | None = None) -> bytes:
    """The whole JSON document (history_json_parts joined)."""
    return b"".join(history_json_parts(session_id, chunks, monitoring))


def _json_samples(part: HistoryChunk) -> bytes:
    """The part's samples as JSON objects separated by commas, assembled by Arrow column by column (C++,
    without the GIL; numbers in their shortest exact form, null where not finite)."""
    pieces: list = ['{"timestamp":', pa.array([orjson.dumps(t).decode() for t in part.timestamps], pa.string()),
                    ',"latency_ms":', _json_numbers(part.latency_ms)]
    groups = [("boundary", part.boundary_signals, part.boundary),
              ("predictions", part.target_signals, part.predictions),
              *([("actual", part.target_signals, part.actual)] if part.actual is not None else [])]
    for name, signals, values in groups:
        for i, signal in enumerate(signals):
            pieces += [("," if i else f',"{name}":{{') + orjson.dumps(signal).decode() + ":",
                       _json_numbers(values[:, i])]
        pieces.append("}" if signals else f',"{name}":{{}}')
    pieces.append("}")
    samples = pc.binary_join_element_wise(*pieces, "")
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(samples)], pa.int32()), samples), ",")
    return joined[0].as_buffer().to_pybytes()


def _json_numbers(values: np.ndarray) -> pa.Array:
    text = pc.cast(pa.array(values, pa.float64()), pa.string())
    return text if np.isfinite(values).all() else pc.if_else(pa.array(np.isfinite(values)), text, "null")
