"""Twin-stream test helpers: a configured peer, the model's expected answers, readings with measured values."""

from __future__ import annotations

import math
import shutil
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from models.twin.manifest import MANIFEST_FILE, read_manifest
from models.twin.plant import TARGET_SIGNALS
from tests.support.wire import Peer, as_signals, connect


def expected(ensemble, x: np.ndarray, boost: dict[str, bool] | None = None) -> np.ndarray:
    return ensemble.predict(np.atleast_2d(x), ensemble.boost_mask(boost or {}))


def values(prediction: dict, targets=TARGET_SIGNALS) -> list[float]:
    return [prediction[t] for t in targets]


async def configured(server, binary=False, **config) -> tuple[Peer, dict]:
    ws = await connect(server).__aenter__()
    peer = Peer(ws)
    ack = await peer.ask({"type": "config", "data": {"ensemble_name": server.demo.name, **config}}, binary)
    assert ack["type"] == "config_ack", ack
    return peer, ack


def measured(row: np.ndarray) -> dict:
    return {t: (None if math.isnan(v) else v) for t, v in zip(TARGET_SIGNALS, row.tolist())}


async def receive_until(peer, predicate, limit: int = 50) -> list[dict]:
    messages = []
    while len(messages) < limit:
        messages.append(await peer.recv())
        if predicate(messages[-1]):
            return messages
    raise AssertionError(f"not received: {messages}")


async def send_measured(peer, data, part: slice, binary: bool = False) -> list[dict]:
    """Send rows `part` of a simulated run (boundary, measured targets, timestamps) as one predict_batch;
    its reply and the alerts pushed after it (read until the pong of a ping sent behind it)."""
    await peer.send({"type": "predict_batch", "data": {
        "batch": [as_signals(r) for r in data.boundary[part]], "timestamps": data.timestamps[part],
        "actual_signals": [measured(r) for r in data.target[part]]}}, binary)
    await peer.send({"type": "ping"}, binary)
    messages = await receive_until(peer, lambda m: m["type"] == "pong", limit=1000)
    return messages[:-1]


def alert_changes(messages: list[dict]) -> list[tuple[str, str, str]]:
    """(type, kind, signal) of the alert messages among `messages`."""
    return [(m["type"], m["data"]["kind"], m["data"]["signal"]) for m in messages
            if m["type"] in ("alert", "alert_cleared")]


@contextmanager
def copied_ensemble(server, label: str) -> Iterator[str]:
    """A copy of the demo ensemble under a new name in the server's repository, for a test that changes an
    ensemble's calibration without touching the one other tests use; its name. Retired (through the API)
    afterwards, so the server lists what it did before."""
    name = f"Ensemble_{label}_20260101_000000"
    folder = server.demo.folder.parent / name
    shutil.copytree(server.demo.folder, folder)
    manifest = read_manifest(folder)
    manifest.name = name
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    try:
        yield name
    finally:
        assert server.api.delete(f"/api/admin/ensembles/{name}").status_code == 204
