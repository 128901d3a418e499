"""Python client for the twin stream, and a demo: stream the demo plant and compare with its sensors.

    python -m serve_app.client --url ws://127.0.0.1:8000 --samples 200

Library use:

    async with TwinClient("ws://127.0.0.1:8000") as twin:
        ack = await twin.configure("Ensemble_DemoPlant_...")
        reply = await twin.predict({"Temperature_boundary_1": 85.0, ...})

Every request carries an `id`; replies are matched by id, so many requests can be in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from typing import Any

import msgpack
import numpy as np
import websockets

from models.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate


class TwinError(RuntimeError):
    """An `error` frame from the server."""

    def __init__(self, reply: dict):
        super().__init__(f"{reply.get('error_code')}: {reply.get('message')}")
        self.reply = reply
        self.code = reply.get("error_code")


class TwinClient:
    """Async twin-stream client over JSON text frames or (binary=True) msgpack frames."""

    def __init__(self, base_url: str, binary: bool = False, session_id: str | None = None):
        url = base_url.rstrip("/") + "/api/v1/inference/stream"
        self.url = f"{url}?session_id={session_id}" if session_id else url
        self.binary = binary
        self.session_id = session_id
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._ws = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "TwinClient":
        self._ws = await websockets.connect(self.url, max_size=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                reply = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
                future = self._waiting.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    async def request(self, type_: str, data: dict | None = None) -> dict:
        """Send one message and return its reply; raises TwinError for `error` replies."""
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {"type": type_, "data": data or {}, "id": request_id}
        await self._ws.send(msgpack.packb(message) if self.binary else json.dumps(message))
        reply = await future
        if reply.get("type") == "error":
            raise TwinError(reply)
        return reply

    async def configure(self, ensemble_name: str, **options: Any) -> dict:
        """Send `config`; remembers the session id for resuming later."""
        ack = await self.request("config", {"ensemble_name": ensemble_name, **options})
        self.session_id = ack["session_id"]
        return ack

    async def predict(self, boundary_signals: dict[str, float], timestamp: str | None = None) -> dict:
        data: dict[str, Any] = {"boundary_signals": boundary_signals}
        if timestamp is not None:
            data["timestamp"] = timestamp
        return await self.request("predict", data)

    async def predict_batch(self, batch: list[dict[str, float]], timestamps: list[str] | None = None) -> dict:
        data: dict[str, Any] = {"batch": batch}
        if timestamps is not None:
            data["timestamps"] = timestamps
        return await self.request("predict_batch", data)


async def _pick_ensemble(http_url: str) -> str:
    import httpx

    async with httpx.AsyncClient() as http:
        ensembles = (await http.get(http_url + "/api/v1/ensembles")).raise_for_status().json()["ensembles"]
    demo = [e["ensemble_name"] for e in ensembles
            if e["boundary_signals"] == BOUNDARY_SIGNALS and e["target_signals"] == TARGET_SIGNALS]
    if not demo:
        raise SystemExit("the server has no ensemble for the demo plant's signals")
    return demo[0]


async def demo(url: str, samples: int, batch: int, binary: bool, seed: int, ensemble: str | None = None) -> np.ndarray:
    """Stream `samples` demo-plant rows; print predicted vs actual; return mean absolute error per target."""
    ensemble = ensemble or await _pick_ensemble(url.replace("ws://", "http://").replace("wss://", "https://"))
    plant = simulate(samples, seed=seed)
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in plant.boundary.tolist()]
    predicted = []
    async with TwinClient(url, binary=binary) as twin:
        ack = await twin.configure(ensemble, mode="batch" if batch > 1 else "single", batch_size=max(batch, 1))
        print(f"session {ack['session_id']} on {ensemble} (boost on {ack['ensemble_info']['boost_signals']})")
        for start in range(0, samples, batch):
            if batch > 1:
                reply = await twin.predict_batch(rows[start:start + batch], plant.timestamps[start:start + batch])
                predicted += [[p[t] for t in TARGET_SIGNALS] for p in reply["data"]["predictions"]]
            else:
                reply = await twin.predict(rows[start], plant.timestamps[start])
                predicted.append([reply["data"]["predictions"][t] for t in TARGET_SIGNALS])
            if start % max(batch, 20) == 0 or batch > 1:
                i = len(predicted) - 1
                pairs = "  ".join(f"{t.split('_', 1)[0][:5]}{t[-1]} {predicted[i][k]:8.3f}/{plant.target[i][k]:8.3f}"
                                  for k, t in enumerate(TARGET_SIGNALS))
                print(f"{plant.timestamps[i]}  predicted/actual  {pairs}  ({reply['data']['latency_ms']:.1f} ms)")
    mae = np.abs(plant.target - np.asarray(predicted)).mean(axis=0)
    print("mean absolute error per target: " + ", ".join(f"{t} {v:.4g}" for t, v in zip(TARGET_SIGNALS, mae)))
    return mae


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream the demo plant to a StreamForge twin server.")
    parser.add_argument("--url", default="ws://127.0.0.1:8000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1, help="samples per message (1 = single mode)")
    parser.add_argument("--msgpack", action="store_true", help="binary msgpack frames instead of JSON")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ensemble", help="ensemble name (default: the newest demo-plant ensemble)")
    args = parser.parse_args()
    try:
        asyncio.run(demo(args.url, args.samples, args.batch, args.msgpack, args.seed, args.ensemble))
    except (OSError, websockets.WebSocketException) as exc:
        sys.exit(f"cannot reach {args.url}: {exc} (is `serve run configs/serve.yaml` running?)")


if __name__ == "__main__":
    main()
