"""StreamForge's own metrics, exported through `ray.serve.metrics` (Ray dashboard, Prometheus).

Ray Serve adds its own per-deployment request, latency and queue metrics; these count what only the
streams know: predictions, frames dropped, open connections, errors by code, end-to-end latency, alerts.
Every name starts with `streamforge_` (Ray prefixes `ray_` on the Prometheus endpoint).
"""

from __future__ import annotations

from ray.serve import metrics

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


class StreamMetrics:
    """Created once per ingress replica."""

    def __init__(self) -> None:
        self.predictions = metrics.Counter(
            "streamforge_predictions", description="Samples predicted for twin clients.", tag_keys=("ensemble",))
        self.twin_latency_ms = metrics.Histogram(
            "streamforge_twin_latency_ms", description="Twin request receive-to-reply latency (ms).",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("type",))
        self.errors = metrics.Counter(
            "streamforge_errors", description="Error replies sent, by stream and error code.", tag_keys=("stream", "code"))
        self.connections = metrics.Gauge(
            "streamforge_open_connections", description="Open WebSocket connections on this replica.",
            tag_keys=("stream",))
        self.frames = metrics.Counter(
            "streamforge_frames", description="Kiosk frames by outcome (processed, dropped).", tag_keys=("outcome",))
        self.frame_latency_ms = metrics.Histogram(
            "streamforge_frame_latency_ms", description="Kiosk frame receive-to-detections latency (ms).",
            boundaries=LATENCY_BOUNDARIES_MS)
        self.alerts = metrics.Counter(
            "streamforge_alerts", description="Twin alerts opened, by kind.", tag_keys=("kind",))
        self._open = {"twin": 0, "kiosk": 0}

    def connection_opened(self, stream: str) -> None:
        self._open[stream] += 1
        self.connections.set(self._open[stream], tags={"stream": stream})

    def connection_closed(self, stream: str) -> None:
        self._open[stream] -= 1
        self.connections.set(self._open[stream], tags={"stream": stream})
