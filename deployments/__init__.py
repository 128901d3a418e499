"""Ray Serve deployments, one per file, thin adapters around `models/`: EnsemblePredictor, YOLODetector,
FaceMatcher; `mongo` holds what a deployment shares with the app (client settings, shopper records).
Nothing here imports `serve_app`."""
