"""One WebSocket connection of the twin stream (`/api/v1/inference/stream`).

Messages are read in order; `config` is applied before the next message is read, predictions run
concurrently (a client may pipeline up to `max_inflight` requests) and replies are written in request
order, each in the encoding (JSON text or msgpack binary) of its request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from models.twin.ensemble import RowBatch
from models.twin.monitor.calibration import MonitorCalibration
from models.twin.monitor.flood import AlarmFlood
from models.twin.monitor.residual_monitor import ResidualMonitor
from serve_app.settings import AppSettings
from serve_app.twin.alert_log import AlertLog
from serve_app.twin.announcements import AlertAnnouncements, SessionAlarms
from serve_app.twin.coalescer import PredictionCoalescer
from serve_app.twin.ensembles import PredictorPool
from serve_app.twin.history_log import HistoryChunk
from serve_app.twin.operator_actions import OperatorActions
from serve_app.twin.protocol import (
    MAX_BATCH,
    ConfigData,
    ErrorCode,
    actual_row,
    alert_message,
    alert_overrides,
    alert_record,
    batch_actuals,
    batch_rows,
    config_ack,
    measured_inputs,
    parse_config,
    parse_envelope,
    prediction,
    prediction_batch,
    signal_row,
    target_only_batch,
    timestamp_text,
)
from serve_app.twin.request_ids import RecentIds
from serve_app.twin.session_shard import REQUEST_IDS_KEPT
from serve_app.twin.sessions import SessionStore
from serve_app.web import codec
from serve_app.web.admission import WebSocketGate
from serve_app.web.auth import Principal
from serve_app.web.background import ConnectionTasks
from serve_app.web.limits import TokenBucket
from serve_app.web.metrics import StreamMetrics
from serve_app.web.wire import WireError, now_iso

logger = logging.getLogger("streamforge.twin")
MAX_ID_CHARS = 256  # longest request id the session remembers (longer ones are echoed only)
TAKEN_OVER_CLOSE_CODE = 4000  # WebSocket close code of a connection whose session a newer one resumed
MONITOR_INLINE_ROWS = 64  # residual-monitor updates of more samples run in a worker thread (compiled, no GIL)


@dataclass
class TwinServices:
    """What the twin connections of one ingress replica share."""

    settings: AppSettings
    ensembles: PredictorPool  # describes ensembles by name
    predictor: PredictionCoalescer  # predicts rows, coalesced across connections
    sessions: SessionStore
    alert_log: AlertLog
    operator: OperatorActions  # shelves and calibration versions in force
    gate: WebSocketGate
    metrics: StreamMetrics


@dataclass
class ActiveConfig:
    """The connection's current config, resolved against the ensemble."""

    config: ConfigData
    boundary: list[str]
    targets: list[str]
    boost_signals: list[str]
    boost_mask: np.ndarray  # [n_target] bool
    monitor: ResidualMonitor | None  # residual monitor with the session's thresholds; None without calibration
    manifest_calibration: MonitorCalibration | None  # the ensemble's own (version 0)
    calibration_version: int  # of the calibration the monitor uses (serve_app.twin.operator_actions)

    def session_config(self) -> dict:
        return self.config.model_dump(exclude={"session_id"})


@dataclass
class Measured:
    """A prediction reply whose samples carried measured target values, for the residual monitor."""

    reply: dict
    predictions: np.ndarray  # [n, n_target]
    actual: np.ndarray  # [n, n_target], NaN where not measured
    timestamps: list[str]
    monitor: ResidualMonitor | None
    boundary: np.ndarray | None  # [n, n_boundary] the inputs, for `envelope`; None: a twin of targets only


class TwinConnection:
    """Serves one accepted WebSocket until the client disconnects."""

    def __init__(self, websocket: WebSocket, services: TwinServices, requested_session: str | None,
                 client: Principal):
        self.ws = websocket
        self.client = client
        self.services = services
        self.requested_session = requested_session
        self.session_id: str | None = None
        self.connection_id = uuid.uuid4().hex
        self.active: ActiveConfig | None = None
        self.budget = TokenBucket(services.settings.limits.twin_messages_per_s, services.settings.limits.twin_burst)
        self.tasks = ConnectionTasks()
        self.recorded = RecentIds(REQUEST_IDS_KEPT)  # ids of the session's requests already recorded
        self.announcements = AlertAnnouncements()  # what the client has heard of the session's alerts

    async def serve(self) -> None:
        replies: asyncio.Queue = asyncio.Queue(maxsize=self.services.settings.limits.max_inflight_per_connection)
        writer = asyncio.create_task(self._write_replies(replies))
        try:
            while not writer.done():
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                binary = message.get("bytes") is not None
                frame = message["bytes"] if binary else message.get("text") or ""
                await replies.put((binary, await self._handle(frame, binary)))
        except WebSocketDisconnect:
            pass
        finally:
            writer.cancel()
            self.tasks.cancel_all()
            if self.session_id is not None:
                self.services.sessions.close(self.session_id, self.connection_id)
                logger.info("twin session %s disconnected", self.session_id)

    def _taken_over(self) -> None:
        """A newer connection resumed this session: say so and close (it carries on over there)."""
        async def close() -> None:
            notice = WireError(ErrorCode.SESSION_TAKEN_OVER, f"session `{self.session_id}` was resumed by a newer "
                               "connection; this one is closed", {"session_id": self.session_id}).to_message()
            await self.ws.send_text(codec.encode(notice, False))
            await self.ws.close(code=TAKEN_OVER_CLOSE_CODE, reason="session taken over by a newer connection")
        self.tasks.start(close())

    async def _write_replies(self, replies: asyncio.Queue) -> None:
        while True:
            binary, reply = await replies.get()
            if isinstance(reply, asyncio.Task):
                reply = await reply
            if isinstance(reply, Measured):
                try:
                    alerts = await self._observe(reply)
                except Exception as exc:  # the prediction stands; the client hears the monitor failed
                    logger.exception("residual monitor failed in session %s", self.session_id)
                    alerts = [WireError(ErrorCode.INTERNAL_ERROR, "the residual monitor failed on these samples",
                                        {"reason": str(exc)[:200]}).to_message()]
                reply = reply.reply
            else:
                alerts = []
            if reply["type"] == "error":
                self.services.metrics.errors.inc(tags={"stream": "twin", "code": reply["error_code"]})
            for message in (reply, *alerts):
                try:
                    frame = codec.encode(message, binary)
                except (ValueError, TypeError, OverflowError) as exc:  # never drop the connection over one reply
                    logger.exception("could not encode a reply in session %s", self.session_id)
                    frame = codec.encode(_with_id(WireError(ErrorCode.INTERNAL_ERROR, "reply could not be encoded",
                                                            {"reason": str(exc)[:200]}).to_message(),
                                                  message.get("id")), binary)
                if binary:
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame)

    async def _observe(self, measured: Measured) -> list[dict]:
        """Run the residual monitor over the samples, in request order; the alert messages to push. Large
        batches run in a worker thread, so the event loop keeps serving other connections meanwhile. The
        alerts of a shelved (signal, kind) are recorded but not pushed; when its shelving runs out the
        client hears how it stands now."""
        monitor = measured.monitor
        if monitor is None:
            return []
        events = self._recalibrated(monitor, measured.timestamps[0])
        update = monitor.update, measured.predictions, measured.actual, measured.timestamps, measured.boundary
        if len(measured.predictions) > MONITOR_INLINE_ROWS:
            events += await asyncio.to_thread(*update)
        else:
            events += update[0](*update[1:])
        shelved = set(self.services.operator.shelved(self.session_id))
        records = [alert_record(e, self.session_id, (e.signal, e.kind) in shelved) for e in events]
        for e in events:
            logger.info("twin session %s: %s", self.session_id, e.message)
            if e.opened:
                self.services.metrics.alerts.inc(tags={"kind": e.kind})
        pushed, back = self.announcements.observe(records, shelved, set(monitor.open_alerts), measured.timestamps[-1])
        self.services.sessions.monitor_changed(self.session_id, self.connection_id,
                                               SessionAlarms(monitor, self.announcements), bool(records or back))
        if records or back:
            self.services.sessions.record_alerts(self.session_id, self.connection_id, records + back)
            self.services.alert_log.record(records + back)
        return [alert_message(r) for r in pushed + back]

    def _recalibrated(self, monitor: ResidualMonitor, timestamp: str) -> list:
        """When another calibration of the ensemble came into force (an operator accepted a new normal,
        applied a recalibration or rolled one back), the monitor switches to it: its open alerts clear."""
        active = self.active
        version, stored = self.services.operator.calibration(active.config.ensemble_name)
        if active.monitor is not monitor or version == active.calibration_version:
            return []
        calibration = active.manifest_calibration if stored is None else MonitorCalibration.model_validate(stored)
        active.calibration_version = version
        logger.info("twin session %s: monitor calibration version %d in force", self.session_id, version)
        return monitor.recalibrate(calibration, alert_overrides(calibration, active.config.alert_thresholds,
                                                                active.targets), timestamp)

    async def _handle(self, frame: str | bytes, binary: bool) -> dict | asyncio.Task:
        """Answer one frame: a reply dict now, or a task that will produce it."""
        request_id = None
        try:
            limit = self.services.settings.limits.max_message_bytes
            if len(frame) > limit:
                raise WireError(ErrorCode.MESSAGE_TOO_LARGE, f"message exceeds {limit} bytes")
            try:
                message = codec.decode(frame)
            except codec.DecodeError as exc:
                raise WireError(ErrorCode.INVALID_JSON, "message is not valid " + ("msgpack" if binary else "JSON"),
                                {"reason": str(exc)[:200]}) from None
            request_id = message.get("id") if isinstance(message, dict) else None
            if not self.budget.take():
                raise WireError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {self.services.settings.limits.twin_messages_per_s:g} messages a second; "
                    "this message was not processed, retry later",
                )
            envelope = parse_envelope(message)
            received = time.perf_counter()
            if envelope.type == "config":
                reply = await self._configure(envelope.data)
            elif self.active is None:
                raise WireError(ErrorCode.INVALID_MESSAGE, "the first message must be `config`",
                                {"received_type": envelope.type})
            elif envelope.type == "ping":
                reply = {"type": "pong", "timestamp": now_iso()}
            elif envelope.type == "predict":
                return self._spawn(self._predict_one(self.active, envelope.data, received, request_id), request_id)
            elif envelope.type == "predict_batch":
                return self._spawn(self._predict_batch(self.active, envelope.data, received, request_id), request_id)
            else:
                raise WireError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type `{envelope.type}`",
                                {"supported": ["config", "predict", "predict_batch", "ping"]})
        except WireError as err:
            reply = err.to_message()
        return _with_id(reply, request_id)

    def _spawn(self, work: Awaitable[dict | Measured], request_id) -> asyncio.Task:
        async def run() -> dict | Measured:
            try:
                reply = await work
                if isinstance(reply, Measured):
                    _with_id(reply.reply, request_id)
                    return reply
            except WireError as err:
                reply = err.to_message()
            except Exception as exc:
                logger.exception("prediction failed in session %s", self.session_id)
                reply = WireError(
                    ErrorCode.PREDICTION_ERROR, "prediction failed", {"reason": str(exc)[:300]}
                ).to_message()
            return _with_id(reply, request_id)
        return asyncio.create_task(run())

    async def _configure(self, data: dict) -> dict:
        config = parse_config(data)
        info = await self.services.ensembles.describe(config.ensemble_name)
        if info is None:
            raise WireError(ErrorCode.ENSEMBLE_NOT_FOUND, f"ensemble `{config.ensemble_name}` not found",
                            {"ensemble_name": config.ensemble_name})
        targets = info["target_signals"]
        unknown = [s for s in config.manual_boost_signals if s not in targets]
        if unknown:
            raise WireError(ErrorCode.INVALID_CONFIG, "manual_boost_signals names unknown target signals",
                            {"unknown_signals": unknown})
        default = set(info["boost_signals"])
        mask = np.array([config.manual_boost_signals.get(t, t in default) for t in targets], dtype=bool)
        await self.services.operator.start()
        manifest_calibration = MonitorCalibration.model_validate(info["monitor"]) if info.get("monitor") else None
        version, stored = self.services.operator.calibration(config.ensemble_name)
        calibration = (MonitorCalibration.model_validate(stored) if stored is not None and manifest_calibration
                       else manifest_calibration)
        thresholds = alert_overrides(calibration, config.alert_thresholds, targets)
        monitor = (
            ResidualMonitor(targets, calibration, thresholds, AlarmFlood(config.alert_flood), info["boundary_signals"])
            if calibration else None
        )
        if monitor is not None and self.active is not None and self.active.monitor is not None:
            monitor.restore(self.active.monitor.state())  # a new config on the same targets keeps the detectors
        active = ActiveConfig(config, info["boundary_signals"], targets, [t for t, m in zip(targets, mask) if m], mask,
                              monitor, manifest_calibration, version)
        resumed = False
        if self.session_id is None:
            requested = config.session_id or self.requested_session
            if requested:
                held = await self.services.sessions.open(requested, active.session_config(), True, self.connection_id,
                                                         self._taken_over, self.client)
                if held is None:
                    raise WireError(ErrorCode.SESSION_NOT_FOUND, f"session `{requested}` does not exist or has expired",
                                    {"session_id": requested})
                self.session_id, resumed = requested, True
                self.recorded.extend(held["request_ids"])
                if monitor is not None and held["monitor_state"] is not None:  # detectors, open alerts carry on
                    SessionAlarms(monitor, self.announcements).restore(held["monitor_state"])
            else:
                session_id = uuid.uuid4().hex
                await self.services.sessions.open(session_id, active.session_config(), False, self.connection_id,
                                                  self._taken_over, self.client)
                self.session_id = session_id
            logger.info("twin session %s %s with %s", self.session_id, "resumed" if resumed else "opened",
                        config.ensemble_name)
        elif config.session_id not in (None, self.session_id):
            raise WireError(ErrorCode.INVALID_CONFIG, f"this connection already holds session `{self.session_id}`")
        else:
            self.services.sessions.update_config(self.session_id, self.connection_id, active.session_config())
        self.active = active
        return config_ack(self.session_id, info, config, active.boost_signals, resumed)

    async def _run(self, active: ActiveConfig, inputs: np.ndarray, timestamps: list[str], actual: np.ndarray | None,
                   received: float, request_id) -> tuple[np.ndarray, float, bool]:
        """Predict rows with the given config and record them in the session, unless a request with the same
        `request_id` was recorded before (a retry); (predictions, latency_ms, whether recorded now)."""
        mask = np.broadcast_to(active.boost_mask, (len(inputs), len(active.targets)))
        out = await self.services.predictor.predict(active.config.ensemble_name, RowBatch(inputs, mask))
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            raise WireError(
                ErrorCode.PREDICTION_ERROR,
                "the model gave non-finite values: inputs far outside its range?",
                {"rows": np.flatnonzero(~finite)[:20].tolist()},
            )
        latency_ms = (time.perf_counter() - received) * 1000.0
        self.services.metrics.predictions.inc(len(inputs), tags={"ensemble": active.config.ensemble_name})
        self.services.metrics.twin_latency_ms.observe(
            latency_ms, tags={"type": "predict" if len(inputs) == 1 else "predict_batch"}
        )
        remembered = _remembered_id(request_id)
        if remembered is not None and not self.recorded.add(remembered):
            return out, latency_ms, False
        boundary = inputs if active.boundary else np.empty((len(inputs), 0))
        self.services.sessions.record(self.session_id, self.connection_id, HistoryChunk(
            timestamps, np.full(len(inputs), latency_ms / len(inputs)), tuple(active.boundary), boundary,
            tuple(active.targets), out, actual), remembered)
        return out, latency_ms, True

    async def _predict_one(self, active: ActiveConfig, data: dict, received: float, request_id) -> dict | Measured:
        timestamp = timestamp_text(data.get("timestamp"))
        actual = (
            None
            if data.get("actual_signals") is None
            else np.asarray([actual_row(data["actual_signals"], active.targets)])
        )
        if active.boundary:
            inputs = np.asarray([signal_row(data.get("boundary_signals"), active.boundary)])
        else:
            if data.get("boundary_signals"):
                raise WireError(ErrorCode.UNKNOWN_SIGNALS, "this ensemble has no boundary signals",
                                {"boundary_signals": []})
            inputs = measured_inputs(actual, "actual_signals")
        out, latency_ms, recorded = await self._run(active, inputs, [timestamp], actual, received, request_id)
        reply = prediction(active.targets, out[0], active.boost_signals, latency_ms, timestamp,
                           active.config.include_metadata, None if actual is None else actual[0] - out[0])
        return reply if actual is None or not recorded else Measured(reply, out, actual, [timestamp], active.monitor,
                                                                     inputs if active.boundary else None)

    async def _predict_batch(self, active: ActiveConfig, data: dict, received: float, request_id) -> dict | Measured:
        limit = min(active.config.batch_size, MAX_BATCH)
        if active.boundary:
            inputs, timestamps = batch_rows(data, active.boundary, limit)
            actual = batch_actuals(data, active.targets, len(inputs))
        else:
            actual, timestamps = target_only_batch(data, active.targets, limit)
            inputs = actual
        timestamps = timestamps or [now_iso()] * len(inputs)
        out, latency_ms, recorded = await self._run(active, inputs, timestamps, actual, received, request_id)
        reply = prediction_batch(active.targets, out, active.boost_signals, latency_ms, active.config.include_metadata,
                                 None if actual is None else actual - out)
        return reply if actual is None or not recorded else Measured(reply, out, actual, timestamps, active.monitor,
                                                                     inputs if active.boundary else None)


def _is_id(value) -> bool:
    """Whether a message's `id` is one its reply echoes: a string or an integer."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _remembered_id(value) -> str | int | None:
    """The id under which the session remembers a request (retries are recorded once): ids of at most
    MAX_ID_CHARS characters or 64-bit integers (what MongoDB stores); None for others, which are echoed
    but not remembered."""
    if not _is_id(value):
        return None
    fits = len(value) <= MAX_ID_CHARS if isinstance(value, str) else -2**63 <= value < 2**63
    return value if fits else None


def _with_id(reply: dict, request_id) -> dict:
    if _is_id(request_id):
        reply["id"] = request_id
    return reply
