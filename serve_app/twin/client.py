"""Python client for the twin stream, and a demo: stream the demo plant and compare with its sensors.

    python -m serve_app.twin.client --url ws://127.0.0.1:8000 --samples 200

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
import os
import sys
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import websockets

from models.twin.plant import BOUNDARY_SIGNALS, TARGET_SIGNALS, simulate

RETRYABLE = {"RATE_LIMITED", "PREDICTION_ERROR", "INTERNAL_ERROR", "TOO_MANY_CONNECTIONS"}


class TwinError(RuntimeError):
    """An `error` frame from the server."""

    def __init__(self, reply: dict):
        super().__init__(f"{reply.get('error_code')}: {reply.get('message')}")
        self.reply = reply
        self.code = reply.get("error_code")


@dataclass
class ClientStats:
    """What the client did: requests sent (first tries), answered, retried, and reconnects."""

    sent: int = 0
    answered: int = 0
    retried: int = 0
    reconnects: int = 0
    resumed: int = 0


class TwinClient:
    """Async twin-stream client over JSON text frames or (binary=True) msgpack frames.

    Requests are pipelined (matched to replies by `id`). A lost connection is re-opened with exponential
    back-off and the session resumed by its `session_id`; requests that were in flight, and replies with a
    retryable error code (RETRYABLE), are sent again with the same `id` - predictions are pure functions of
    their inputs, so a retry cannot change an answer.
    """

    def __init__(self, base_url: str, binary: bool = False, session_id: str | None = None, token: str | None = None,
                 max_retries: int = 8, backoff_s: float = 0.2, max_backoff_s: float = 5.0,
                 reply_timeout_s: float = 30.0):
        self.url = base_url.rstrip("/") + "/api/v1/inference/stream"
        self.binary = binary
        self.session_id = session_id
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.reply_timeout_s = reply_timeout_s
        self._broken = None  # a connection that stopped answering
        self.stats = ClientStats()
        self._config: dict | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future, Any]] = {}  # id -> (reply future, its connection)
        self.alerts: list[dict] = []  # `alert` / `alert_cleared` pushed by the server, in arrival order
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._connecting = asyncio.Lock()
        self._taken_over: dict | None = None  # the server's notice that a newer connection resumed the session

    async def __aenter__(self) -> "TwinClient":
        await self._connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _connect(self) -> None:
        url = f"{self.url}?session_id={self.session_id}" if self.session_id else self.url
        self._ws = await websockets.connect(url, max_size=64 * 1024 * 1024, additional_headers=self.headers)
        self._reader = asyncio.create_task(self._read(self._ws))

    def _healthy(self) -> bool:
        return self._ws is not None and self._ws.close_code is None and self._ws is not self._broken

    async def _reconnect(self) -> None:
        """Open a new connection and resume the session, unless another request already did."""
        async with self._connecting:
            if self._healthy():
                return
            if self._ws is not None:
                await self._ws.close()
            await self._connect()
            self.stats.reconnects += 1
            if self._config is not None:
                await self._resume()

    async def _resume(self) -> None:
        config = {**self._config, "session_id": self.session_id}
        reply = await self._exchange("config", config)
        if reply.get("error_code") == "SESSION_NOT_FOUND":  # the server forgot it: start a new session
            reply = await self._exchange("config", self._config)
        if reply.get("type") == "error":
            raise TwinError(reply)
        self.stats.resumed += bool(reply.get("resumed"))
        self.session_id = reply["session_id"]

    async def _read(self, ws) -> None:
        try:
            async for frame in ws:
                reply = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
                if reply.get("type") in ("alert", "alert_cleared"):
                    self.alerts.append(reply)
                    continue
                if reply.get("error_code") == "SESSION_TAKEN_OVER":  # do not fight the newer connection
                    self._taken_over = reply
                    continue
                future, _ = self._waiting.pop(reply.get("id"), (None, None))
                if future is not None and not future.done():
                    future.set_result(reply)
        except websockets.ConnectionClosed:
            pass
        finally:
            for request_id, (future, sent_on) in list(self._waiting.items()):
                if sent_on is ws:
                    self._waiting.pop(request_id, None)
                    if not future.done():
                        future.set_exception(ConnectionError("connection closed"))

    async def _exchange(self, type_: str, data: dict, request_id: int | None = None) -> dict:
        """Send once on the current connection and wait for the reply; ConnectionError if the connection
        drops or stays silent for `reply_timeout_s` (it is then closed and replaced by the next request)."""
        request_id = request_id or next(self._ids)
        ws = self._ws
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (future, ws)
        message = {"type": type_, "data": data, "id": request_id}
        try:
            await ws.send(msgpack.packb(message) if self.binary else json.dumps(message))
            return await asyncio.wait_for(future, self.reply_timeout_s)
        except asyncio.TimeoutError:
            self._broken = ws
            raise ConnectionError(f"no reply within {self.reply_timeout_s} s") from None
        except websockets.ConnectionClosed as exc:
            raise ConnectionError("connection closed") from exc
        finally:
            self._waiting.pop(request_id, None)

    async def request(self, type_: str, data: dict | None = None) -> dict:
        """Send one message and return its reply, retrying lost connections and retryable errors with
        exponential back-off; raises TwinError for other `error` replies."""
        request_id = next(self._ids)
        self.stats.sent += 1
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            if self._taken_over is not None:
                raise TwinError(self._taken_over)
            try:
                if not self._healthy():
                    await self._reconnect()
                reply = await self._exchange(type_, data or {}, request_id)
            except (ConnectionError, OSError, websockets.WebSocketException) as exc:
                if attempt == self.max_retries:
                    raise ConnectionError(f"gave up after {attempt + 1} tries: {exc}") from exc
                reply = None
            if reply is not None and (reply.get("type") != "error" or reply.get("error_code") not in RETRYABLE
                                      or attempt == self.max_retries):
                break
            self.stats.retried += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
        if reply.get("type") == "error":
            raise TwinError(reply)
        self.stats.answered += 1
        return reply

    async def configure(self, ensemble_name: str, **options: Any) -> dict:
        """Send `config`; remembers it and the session id, to resume after a reconnect."""
        config = {"ensemble_name": ensemble_name, **options}
        if self.session_id and "session_id" not in config and self._config is None:
            config["session_id"] = self.session_id
        ack = await self.request("config", config)
        self._config = {k: v for k, v in config.items() if k != "session_id"}
        self.session_id = ack["session_id"]
        return ack

    async def predict(self, boundary_signals: dict[str, float], timestamp: str | None = None,
                      actual_signals: dict[str, float | None] | None = None) -> dict:
        data: dict[str, Any] = {"boundary_signals": boundary_signals}
        if timestamp is not None:
            data["timestamp"] = timestamp
        if actual_signals is not None:
            data["actual_signals"] = actual_signals
        return await self.request("predict", data)

    async def predict_batch(self, batch: list[dict[str, float]], timestamps: list[str] | None = None,
                            actual_signals: list[dict[str, float | None] | None] | None = None) -> dict:
        data: dict[str, Any] = {"batch": batch}
        if timestamps is not None:
            data["timestamps"] = timestamps
        if actual_signals is not None:
            data["actual_signals"] = actual_signals
        return await self.request("predict_batch", data)


async def _pick_ensemble(http_url: str, token: str | None) -> str:
    import httpx

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else {}) as http:
        ensembles = (await http.get(http_url + "/api/v1/ensembles")).raise_for_status().json()["ensembles"]
    demo = [e["ensemble_name"] for e in ensembles
            if e["boundary_signals"] == BOUNDARY_SIGNALS and e["target_signals"] == TARGET_SIGNALS]
    if not demo:
        raise SystemExit("the server has no ensemble for the demo plant's signals")
    return demo[0]


async def demo(url: str, samples: int, batch: int, binary: bool, seed: int, ensemble: str | None = None,
               token: str | None = None) -> np.ndarray:
    """Stream `samples` demo-plant rows; print predicted vs actual; return mean absolute error per target."""
    ensemble = ensemble or await _pick_ensemble(url.replace("ws://", "http://").replace("wss://", "https://"), token)
    plant = simulate(samples, seed=seed)
    rows = [dict(zip(BOUNDARY_SIGNALS, r)) for r in plant.boundary.tolist()]
    predicted = []
    async with TwinClient(url, binary=binary, token=token) as twin:
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
    parser.add_argument("--token", default=os.environ.get("STREAMFORGE_TOKEN"),
                        help="API key when the server has auth on (default: $STREAMFORGE_TOKEN)")
    args = parser.parse_args()
    try:
        asyncio.run(demo(args.url, args.samples, args.batch, args.msgpack, args.seed, args.ensemble, args.token))
    except (OSError, websockets.WebSocketException) as exc:
        sys.exit(f"cannot reach {args.url}: {exc} (is `serve run configs/serve.yaml` running?)")


if __name__ == "__main__":
    main()
