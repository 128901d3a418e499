"""What deployments share with each other and with the app (not deployments themselves): MongoDB access
(mongo), stored detector versions (detector_versions), a replica's live detector (live_detector)."""
