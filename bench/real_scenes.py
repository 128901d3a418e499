"""Phantom products: held-out real photos with no product, streamed as kiosk cameras through the server.

    python -m models.real_scenes --out data/real_scenes      # the corpus, from installed packages
    python -m bench.real_scenes --corpus data/real_scenes     # ~2 minutes

Each held-out picture is one kiosk session: FRAMES_PER_SCENE frames at 10 fps, each moved a few pixels
and relit as consecutive frames of a real camera are. Nothing in these pictures is for sale, so every
`detections` entry is a false detection at the shipped threshold and every cart line is a phantom item.
Writes bench/results/real_scenes.json (`phantom_cart_items`, `false_detections_per_1000`, the pictures
that fooled the detector most).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from pathlib import Path

import cv2
import numpy as np
import websockets
from tqdm import tqdm

from bench.run_suite import streamforge_server, write_report
from models.real_scenes import held_out
from serve_app.settings import ray_environment

FRAMES_PER_SCENE = 40
FPS = 10.0
KIOSKS_AT_ONCE = 4


def camera_frames(picture: Path, count: int, seed: int) -> list[bytes]:
    """`count` JPEG frames of a still scene as a camera sees it: small shifts, light and sensor noise."""
    image = cv2.imread(str(picture), cv2.IMREAD_COLOR)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        shift = np.float32([[1, 0, rng.uniform(-4, 4)], [0, 1, rng.uniform(-4, 4)]])
        moved = cv2.warpAffine(image, shift, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        lit = np.clip(moved.astype(np.float32) * rng.uniform(0.93, 1.07) + rng.normal(0, 2.5, moved.shape), 0, 255)
        frames.append(cv2.imencode(".jpg", lit.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return frames


async def scene_session(url: str, name: str, frames: list[bytes]) -> dict:
    """Stream the frames at FPS as one kiosk; what the server detected and put in the cart."""
    detections, processed, cart_items, fooled = [], 0, 0, 0
    async with websockets.connect(f"{url}/ws/{name}", max_size=2 ** 24) as ws:
        async def receive() -> None:
            nonlocal processed, cart_items, fooled
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "detections":
                    processed += 1
                    fooled += bool(message["detections"])
                    detections.extend(message["detections"])
                elif message["type"] == "product_detected":
                    cart_items += message["quantity"]
        reader = asyncio.create_task(receive())
        for i, frame in enumerate(frames):
            await ws.send(json.dumps({"type": "frame", "timestamp": f"{name}-{i}",
                                      "frame": base64.b64encode(frame).decode()}))
            await asyncio.sleep(1 / FPS)
        await asyncio.sleep(1.5)  # the last frames' replies
        reader.cancel()
    return {"processed": processed, "detections": detections, "cart_items": cart_items, "fooled": fooled}


async def run(url: str, pictures: list[Path]) -> list[dict]:
    results = []
    for start in tqdm(range(0, len(pictures), KIOSKS_AT_ONCE), desc="scenes", unit="batch"):
        batch = pictures[start:start + KIOSKS_AT_ONCE]
        sessions = [scene_session(url, f"real-{start + i}", camera_frames(p, FRAMES_PER_SCENE, start + i))
                    for i, p in enumerate(batch)]
        for picture, result in zip(batch, await asyncio.gather(*sessions)):
            results.append({"picture": picture.name, **result})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/real_scenes"))
    parser.add_argument("--out", default="real_scenes.json")
    args = parser.parse_args()
    pictures = held_out(args.corpus)
    if not pictures:
        raise SystemExit(f"no held-out pictures in {args.corpus}: build the corpus with `python -m models.real_scenes`")
    with streamforge_server("real_scenes.log", ray_environment()) as url:
        results = asyncio.run(run(url, pictures))
    frames = sum(r["processed"] for r in results)
    false = sum(len(r["detections"]) for r in results)
    report = {
        "pictures": len(pictures), "frames": frames,
        "phantom_cart_items": sum(r["cart_items"] for r in results),
        "false_detections_per_1000": round(1000 * false / max(frames, 1), 1),
        "frames_with_a_false_detection": round(sum(r["fooled"] for r in results) / max(frames, 1), 3),
        "worst": sorted(({"picture": r["picture"], "detections": len(r["detections"]), "cart_items": r["cart_items"],
                          "top_score": max((d["score"] for d in r["detections"]), default=0.0)}
                         for r in results), key=lambda w: -w["detections"])[:10],
    }
    write_report(args.out, report, "worst")


if __name__ == "__main__":
    main()
