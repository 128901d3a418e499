"""The deployment graph: `serve run configs/serve.yaml` imports `build_app`."""

from __future__ import annotations

from ray.serve import Application

from deployments.ensemble_predictor import EnsemblePredictor
from serve_app.ingress import StreamIngress
from serve_app.settings import AppSettings, project_path


def build_app(args: dict | None = None) -> Application:
    """Compose ingress + predictor; `args` are AppSettings fields (see configs/serve.yaml)."""
    settings = AppSettings.model_validate(args or {})
    predictor = EnsemblePredictor.bind(str(project_path(settings.model_repository)))
    return StreamIngress.bind(predictor, settings.model_dump())
