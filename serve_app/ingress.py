"""The StreamIngress deployment: the FastAPI app, its middleware and the services behind its routes.

Routes live with their product (`serve_app.twin.routes`, `serve_app.store.routes`); this module builds,
once per replica, the services those routes use and keeps them in `app.state`.
"""
# No `from __future__ import annotations` here: serve.ingress re-wraps the methods and FastAPI must see
# real annotation objects. The deployment class comes last: Serve serialises it when it is decorated, so
# the module-level names it uses must exist by then.

import gc
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pymongo.errors import PyMongoError
from ray import serve

from deployments.shared.detector_versions import DetectorVersions
from deployments.shared.mongo import ShopperRecords
from models.twin.monitor.residual_monitor import compile_monitor
from serve_app.settings import FRONTEND, AppSettings, merge_settings, project_path
from serve_app.store import enrollment_routes
from serve_app.store import routes as store_routes
from serve_app.store.catalogue import Catalogue
from serve_app.store.connection import StoreServices
from serve_app.store.database import StoreDatabase
from serve_app.store.detection import DetectorPool, LocalDetector
from serve_app.store.enrollment import EnrollmentRecords
from serve_app.store.sessions import StoreSessions
from serve_app.twin import operator_routes
from serve_app.twin import routes as twin_routes
from serve_app.twin.alert_log import AlertLog
from serve_app.twin.coalescer import PredictionCoalescer
from serve_app.twin.connection import TwinServices
from serve_app.twin.ensembles import LocalEnsembles, PredictorPool
from serve_app.twin.operator_actions import OperatorActions
from serve_app.twin.sessions import SessionStore
from serve_app.web.access import AccessControl, AccessPolicy
from serve_app.web.admission import WebSocketGate
from serve_app.web.auth import Authenticator
from serve_app.web.compression import decline_websocket_compression
from serve_app.web.limits import ConnectionLimiter
from serve_app.web.metrics import StreamMetrics

logger = logging.getLogger("streamforge.ingress")
# AppSettings that StreamIngress's `user_config` may change on running replicas: read where they are used
LIVE_SETTINGS = frozenset({
    "twin.history_limit", "twin.session_ttl_s", "sessions.persist_interval_s", "store.face_interval_s",
    "limits.max_message_bytes", "limits.max_frame_bytes", "limits.max_image_pixels", "limits.twin_messages_per_s",
    "limits.twin_burst", "limits.kiosk_frames_per_s", "limits.kiosk_burst", "limits.max_inflight_per_connection",
})


def _dotted_keys(settings: dict) -> list[str]:
    """`{"twin": {"history_limit": 1}}` -> ["twin.history_limit"]; a key whose value is no section stays as is."""
    return [f"{section}.{key}" for section, value in settings.items() if isinstance(value, dict) for key in value] + [
        section for section, value in settings.items() if not isinstance(value, dict)]

app = FastAPI(title="StreamForge", version="0.1.0",
              description="Real-time inference for sensor and camera streams on Ray Serve.")
app.add_middleware(AccessControl)
app.mount("/static", StaticFiles(directory=FRONTEND / "static", check_dir=False), name="static")
app.include_router(twin_routes.router)
app.include_router(operator_routes.router)
app.include_router(store_routes.router)
app.include_router(enrollment_routes.router)


@app.exception_handler(PyMongoError)
async def database_unavailable(request: Request, exc: PyMongoError) -> JSONResponse:
    logger.error("database error on %s: %s", request.url.path, exc)
    return JSONResponse({"error": "the store database is unavailable, try again shortly"}, status_code=503)


@app.exception_handler(Exception)
async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def _twin_services(settings: AppSettings, predictor, mongo_uri: str, actor_prefix: str, gate: WebSocketGate,
                   metrics: StreamMetrics) -> TwinServices:
    pool = PredictorPool(predictor)
    if settings.twin.inference == "ingress":
        backend = LocalEnsembles(project_path(settings.twin.model_repository), metrics=metrics)
        max_calls = settings.twin.ingress_calls
    else:
        backend, max_calls = pool, 4
    return TwinServices(
        settings=settings,
        ensembles=pool,
        predictor=PredictionCoalescer(
            backend.predict, settings.twin.coalesce_max_rows, settings.twin.coalesce_wait_s, max_calls
        ),
        sessions=SessionStore(actor_prefix, settings, mongo_uri),
        alert_log=AlertLog(mongo_uri),
        operator=OperatorActions(mongo_uri),
        gate=gate,
        metrics=metrics,
    )


def _store_services(settings: AppSettings, detector, faces, mongo_uri: str, actor_prefix: str, auth: Authenticator,
                    gate: WebSocketGate, metrics: StreamMetrics) -> StoreServices:
    versions = DetectorVersions(mongo_uri)
    if settings.store.inference == "ingress":
        frames = LocalDetector(
            project_path(settings.store.detector_weights),
            settings.store.detector_conf,
            settings.store.detector_iou,
            settings.store.ingress_calls,
            versions,
        )
    else:
        frames = DetectorPool(detector)
    db = StoreDatabase(mongo_uri)
    return StoreServices(
        settings=settings, detector=frames, faces=faces, catalogue=Catalogue(db, settings.store.catalogue_refresh_s),
        sessions=StoreSessions(actor_prefix, settings, mongo_uri), db=db, shoppers=ShopperRecords(mongo_uri),
        enrollments=EnrollmentRecords(mongo_uri), detector_versions=versions, mongo_uri=mongo_uri,
        auth=auth, gate=gate, metrics=metrics)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=1000)
@serve.ingress(app)
class StreamIngress:
    """Accepts client connections; their work goes to the model deployments and the session actors."""

    def __init__(self, predictor, detector, faces, mongo_uri: str, settings: AppSettings):
        if not settings.websocket_compression:
            decline_websocket_compression()  # before Ray starts this replica's server
        auth = Authenticator(settings.auth)
        app.state.access = AccessPolicy(auth, settings.limits.max_http_body_bytes, settings.limits.http_requests_per_s,
                                        settings.limits.http_burst)
        if not auth.enabled:
            logger.warning("auth is OFF: StreamForge answers loopback clients only; enable `auth` to serve a network")
        metrics = StreamMetrics(settings.limits.max_connections)
        gate = WebSocketGate(
            ConnectionLimiter(settings.limits.max_connections, settings.limits.max_connections_per_address), metrics
        )
        actor_prefix = f"streamforge-{serve.get_replica_context().app_name}"
        self.settings = settings
        app.state.twin = _twin_services(settings, predictor, mongo_uri, actor_prefix, gate, metrics)
        app.state.store = _store_services(settings, detector, faces, mongo_uri, actor_prefix, auth, gate, metrics)
        compile_monitor()
        # Everything loaded so far (Ray, FastAPI, models) lives as long as the replica: keep it out of the
        # garbage collector's full passes, which otherwise pause the event loop under load (docs/benchmarks.md).
        gc.freeze()

    def reconfigure(self, user_config: dict) -> None:
        """The deployment's `user_config`: new values of LIVE_SETTINGS, applied to the running replicas and
        session shards (a redeploy that changes only these keeps every connection)."""
        refused = [key for key in _dotted_keys(user_config) if key not in LIVE_SETTINGS]
        if refused:
            raise ValueError(f"user_config may set {sorted(LIVE_SETTINGS)}, not {refused}")
        self.settings = AppSettings.model_validate(merge_settings(self.settings.model_dump(), user_config))
        app.state.twin.settings = app.state.store.settings = self.settings
        app.state.twin.sessions.configure(self.settings)
        logger.info("settings changed live: %s", user_config)

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}
