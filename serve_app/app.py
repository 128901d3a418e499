"""The deployment graph: `serve run configs/serve.yaml` imports `build_app`."""

from __future__ import annotations

from ray.serve import Application

from deployments.ensemble_predictor import EnsemblePredictor
from deployments.face_matcher import FaceMatcher
from deployments.shared.detector_versions import DetectorVersions
from deployments.shared.mongo import ShopperRecords
from deployments.yolo_detector import YOLODetector
from serve_app.embedded_mongo import mongo_uri
from serve_app.ingress import StreamIngress
from serve_app.settings import AppSettings, project_path
from serve_app.store.database import StoreDatabase
from serve_app.store.enrollment import EnrollmentRecords
from serve_app.twin.alert_log import AlertLog
from serve_app.twin.operator_actions import OperatorActions


def build_app(args: dict | None = None) -> Application:
    """Compose ingress + predictor + detector + face matcher; `args` are AppSettings fields (configs/serve.yaml).

    Also resolves the store database (starting the embedded one when no MongoDB is configured), creates
    its indexes (store, shoppers, alerts, operator actions, detector versions, enrollments) and loads the
    catalogue seed (idempotent).
    """
    settings = AppSettings.model_validate(args or {})
    uri = mongo_uri(settings.database.mongodb_uri, project_path(settings.database.dir), settings.database.embedded_port)
    database = StoreDatabase(uri)
    database.ensure_schema()
    database.seed_catalogue(project_path(settings.store.catalogue))
    ShopperRecords(uri).ensure_schema()
    AlertLog(uri).ensure_schema()
    OperatorActions(uri).ensure_schema()
    DetectorVersions(uri).ensure_schema()
    EnrollmentRecords(uri).ensure_schema()
    predictor = EnsemblePredictor.bind(str(project_path(settings.twin.model_repository)), settings.twin.runtime)
    detector = YOLODetector.bind(
        str(project_path(settings.store.detector_weights)),
        settings.store.detector_conf,
        settings.store.detector_iou,
        uri,
    )
    faces = FaceMatcher.bind(uri)
    return StreamIngress.bind(predictor, detector, faces, uri, settings)
