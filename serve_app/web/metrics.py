"""StreamForge's own metrics, exported through `ray.serve.metrics` (Ray dashboard, Prometheus).

Ray Serve adds its own per-deployment request, latency and queue metrics; these count what only the
streams know: predictions, frames dropped, open connections, errors by code, end-to-end latency, alerts.
Every name starts with `streamforge_` (Ray prefixes `ray_` on the Prometheus endpoint).
"""

from __future__ import annotations

import asyncio

from ray.serve import metrics

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
GAUGE_REFRESH_S = 5.0  # Ray stops exporting a gauge that is not set again within ~20 s


class StreamMetrics:
    """Created once per ingress replica."""

    def __init__(self, max_connections: int) -> None:
        self.predictions = metrics.Counter(
            "streamforge_predictions", description="Samples predicted for twin clients.", tag_keys=("ensemble",))
        self.twin_latency_ms = metrics.Histogram(
            "streamforge_twin_latency_ms", description="Twin request receive-to-reply latency (ms).",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("type",))
        self.errors = metrics.Counter(
            "streamforge_errors",
            description="Error replies sent, by stream and error code.",
            tag_keys=("stream", "code"),
        )
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
        self.call_rows = metrics.Histogram(  # the same series the EnsemblePredictor pool exports
            "streamforge_predictor_batch_rows", description="Rows per ensemble call.",
            boundaries=[1, 4, 16, 64, 256, 1024, 4096], tag_keys=("ensemble",))
        self.connection_limit = metrics.Gauge(
            "streamforge_connection_limit", description="Open WebSockets this replica accepts (max_connections).")
        self._max_connections = max_connections
        self._open = {"twin": 0, "kiosk": 0}
        self._refresher: asyncio.Task | None = None

    def _set_gauges(self) -> None:
        self.connection_limit.set(self._max_connections)
        for stream, count in self._open.items():
            self.connections.set(count, tags={"stream": stream})

    async def _refresh_gauges(self) -> None:
        while True:
            self._set_gauges()
            await asyncio.sleep(GAUGE_REFRESH_S)

    def connection_opened(self, stream: str) -> None:
        """Count an accepted WebSocket (and keep the gauges exported from then on)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_gauges())
        self._open[stream] += 1
        self._set_gauges()

    def connection_closed(self, stream: str) -> None:
        self._open[stream] -= 1
        self._set_gauges()
