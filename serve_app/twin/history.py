"""A session's inference history as CSV or JSON, in the column layout of docs/protocol.md.

Both are rendered by Arrow column by column in C++ (without the GIL: CSV by its CSV writer, JSON by
joining the text of each column), in parts of `PART_ROWS` samples that a response can stream while the
replica keeps serving other clients."""

from __future__ import annotations

import io
from dataclasses import replace
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


def _export_parts(chunks: list[HistoryChunk], part_rows: int) -> Iterator[tuple[HistoryChunk, np.ndarray | None]]:
    """The samples in parts of at most `part_rows`, consecutive chunks of the same signals joined (a live
    session's history holds one small chunk per flush): (part, which of its rows were sent with measured
    values - None when none were; the others' `actual` is NaN)."""
    runs: list[list[HistoryChunk]] = []
    for chunk in chunks:
        if runs and runs[-1][0].same_signals(chunk):
            runs[-1].append(chunk)
        elif len(chunk):
            runs.append([chunk])
    for run in runs:
        measured = None
        if any(c.actual is not None for c in run):
            measured = np.concatenate([np.full(len(c), c.actual is not None) for c in run])
            run = [c if c.actual is not None else replace(c, actual=np.full(c.predictions.shape, np.nan)) for c in run]
        whole = HistoryChunk.joined(run)
        for start in range(0, len(whole), part_rows):
            yield whole.rows(start, start + part_rows), None if measured is None else measured[start:start + part_rows]


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
    for part, _ in _export_parts(chunks, part_rows):  # rows sent without measured values: NaN, written empty
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
    for part, measured in _export_parts(chunks, part_rows):
        yield separator + _json_samples(part, measured)
        separator = b","
    yield b"]" + (b"," + orjson.dumps(monitoring, option=orjson.OPT_SERIALIZE_NUMPY)[1:] if monitoring else b"}")


def history_json(session_id: str, chunks: list[HistoryChunk], monitoring: dict | None = None) -> bytes:
    """The whole JSON document (history_json_parts joined)."""
    return b"".join(history_json_parts(session_id, chunks, monitoring))


def _json_samples(part: HistoryChunk, measured: np.ndarray | None) -> bytes:
    """The part's samples as JSON objects separated by commas, assembled by Arrow column by column (C++,
    without the GIL; numbers in their shortest exact form, null where not finite); "actual" on the rows
    that were sent with measured values (`measured`)."""
    pieces: list = ['{"timestamp":', pa.array([orjson.dumps(t).decode() for t in part.timestamps], pa.string()),
                    ',"latency_ms":', _json_numbers(part.latency_ms)]
    pieces += _json_object("boundary", part.boundary_signals, part.boundary)
    pieces += _json_object("predictions", part.target_signals, part.predictions)
    if measured is not None:
        actual = pc.binary_join_element_wise(*_json_object("actual", part.target_signals, part.actual), "")
        pieces.append(pc.if_else(pa.array(measured), actual, ""))
    pieces.append("}")
    samples = pc.binary_join_element_wise(*pieces, "")
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(samples)], pa.int32()), samples), ",")
    return joined[0].as_buffer().to_pybytes()


def _json_object(name: str, signals: tuple[str, ...], values: np.ndarray) -> list:
    """The pieces of `,"name":{"signal":value,...}` for every row (text and columns of text)."""
    if not signals:
        return [f',"{name}":{{}}']
    pieces: list = []
    for i, signal in enumerate(signals):
        pieces += [("," if i else f',"{name}":{{') + orjson.dumps(signal).decode() + ":", _json_numbers(values[:, i])]
    return [*pieces, "}"]


def _json_numbers(values: np.ndarray) -> pa.Array:
    text = pc.cast(pa.array(values, pa.float64()), pa.string())
    finite = np.isfinite(values)
    return text if finite.all() else pc.if_else(pa.array(finite), text, "null")
