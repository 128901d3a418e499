"""Ray Serve deployments, one per file, thin adapters around `models/`: `EnsemblePredictor`
(ensemble_predictor), `YOLODetector` (yolo_detector), `FaceMatcher` (face_matcher).

`deployments.shared` holds what the deployments share with each other and with the app, and is not a
deployment itself: MongoDB client settings and shopper records (mongo), stored detector versions and the
live pointer (detector_versions), a replica's detector swapped when the live version changes
(live_detector). Nothing here imports `serve_app`.
"""
