"""Baseline A: the original service's design, re-created for comparison.

One FastAPI/uvicorn process, a module-level session dict, the ensemble in PyTorch, and one forward pass
per WebSocket message - as the original "Industrial digital twin by transformer" inference service did.
It speaks the same twin protocol (config / predict / predict_batch / ping) so the same load generator
drives it.

    python -m bench.baseline_original --port 8100 --repository data/model_repository
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from models.twin.graph import load_graph
from models.twin.manifest import read_manifest, read_scalers

app = FastAPI()
ENSEMBLES: dict[str, dict] = {}
SESSIONS: dict[str, dict] = {}  # the original kept sessions in a global dict


def load(folder: Path) -> dict:
    manifest = read_manifest(folder)
    x_scaler, y_scaler = read_scalers(folder)
    return {"manifest": manifest, "graph": load_graph(folder, manifest), "x": x_scaler, "y": y_scaler}


@torch.inference_mode()
def forward(ensemble: dict, rows: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(ensemble["x"].transform(rows))
    mask = np.array([t in ensemble["manifest"].boost_signals for t in ensemble["manifest"].target_signals])
    stage1, residual = ensemble["graph"](x)
    out = stage1.numpy() + residual.numpy() * mask
    return ensemble["y"].inverse(out)


@app.websocket("/api/v1/inference/stream")
async def stream(websocket: WebSocket):
    await websocket.accept()
    session_id, session = str(uuid.uuid4()), None
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            kind, data = message.get("type"), message.get("data", {})
            if kind == "config":
                ensemble = ENSEMBLES.get(data.get("ensemble_name"))
                if ensemble is None:
                    await websocket.send_json(
                        {"type": "error", "error_code": "ENSEMBLE_NOT_FOUND", "message": "", "details": {}}
                    )
                    continue
                session = SESSIONS[session_id] = {"ensemble": ensemble, "history": [], "count": 0}
                m = ensemble["manifest"]
                await websocket.send_json(
                    {
                        "type": "config_ack",
                        "status": "success",
                        "message": "configured",
                        "session_id": session_id,
                        "ensemble_info": {
                            "ensemble_name": m.name,
                            "num_signals": len(m.target_signals),
                            "signals_using_boost": len(m.boost_signals),
                        },
                    }
                )
            elif kind in ("predict", "predict_batch") and session:
                start = time.perf_counter()
                m = session["ensemble"]["manifest"]
                batch = [data["boundary_signals"]] if kind == "predict" else data["batch"]
                rows = np.array([[r[s] for s in m.boundary_signals] for r in batch], dtype=np.float64)
                out = forward(session["ensemble"], rows)
                latency = (time.perf_counter() - start) * 1000
                preds = [dict(zip(m.target_signals, row)) for row in out.tolist()]
                session["history"].extend(zip(batch, preds))
                session["count"] += len(preds)
                if kind == "predict":
                    reply = {"type": "prediction", "status": "success", "data": {"predictions": preds[0],
                             "signals_used_boost": m.boost_signals, "latency_ms": latency}}
                else:
                    reply = {"type": "prediction_batch", "status": "success", "data": {"predictions": preds,
                             "count": len(preds), "latency_ms": latency}}
                await websocket.send_json(reply)
            elif kind == "ping":
                await websocket.send_json({"type": "pong"})
    except WebSocketDisconnect:
        SESSIONS.pop(session_id, None)


@app.get("/api/v1/ensembles")
async def ensembles() -> dict:
    return {"ensembles": [{"ensemble_name": n, "boundary_signals": e["manifest"].boundary_signals,
                           "target_signals": e["manifest"].target_signals} for n, e in ENSEMBLES.items()]}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run baseline A (the original design).")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--repository", type=Path, default=Path("data/model_repository"))
    args = parser.parse_args()
    for folder in sorted(args.repository.iterdir()):
        if (folder / "manifest.json").exists():
            ENSEMBLES[folder.name] = load(folder)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
