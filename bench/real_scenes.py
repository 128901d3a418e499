"""The store detector in the real world: phantom products in held-out real scenes streamed through the
server, and accuracy on products composed onto held-out real photos.

    python -m models.store.real_scenes --out data/real_scenes      # the corpus, from installed packages
    python -m bench.real_scenes --corpus data/real_scenes     # ~5 minutes

Kiosk sessions at 10 fps through configs/serve.yaml's server: each held-out picture is one kiosk
(FRAMES_PER_PICTURE frames, each moved a few pixels and relit as consecutive frames of a real camera
are), each held-out video is one kiosk streaming its frames in order. Nothing in them is for sale, so
every `detections` entry is a false detection at the served threshold and every cart line a phantom item.
Then, without the server, the served detector's mAP50 on catalogue products composed onto held-out
photos and on rendered scenes (models.store.eval), and its milliseconds per frame.
Writes bench/results/real_scenes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import websockets
from tqdm import tqdm

from bench.run_suite import SCRATCH, streamforge_server, write_report
from models.store.eval import evaluate
from models.store.real_scenes import held_out_videos, pictures
from models.store.render import catalogue_looks
from models.store.train import PhotoPool, catalogue_classes, write_split
from serve_app.settings import AppSettings, project_path, ray_environment

FRAMES_PER_PICTURE = 10
FPS = 10.0
KIOSKS_AT_ONCE = 4
TEST_SCENES = 300


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


def video_frames(frames: list[Path]) -> list[bytes]:
    """A held-out video's stored frames (already at 10 fps), as JPEG bytes."""
    return [f.read_bytes() for f in frames]


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


async def run(url: str, scenes: list[tuple[str, list[bytes]]]) -> list[dict]:
    results = []
    for start in tqdm(range(0, len(scenes), KIOSKS_AT_ONCE), desc="kiosks", unit="batch"):
        batch = scenes[start:start + KIOSKS_AT_ONCE]
        sessions = [scene_session(url, f"real-{start + i}", frames) for i, (_, frames) in enumerate(batch)]
        for (name, _), result in zip(batch, await asyncio.gather(*sessions)):
            results.append({"scene": name, **result})
    return results


def accuracy(corpus: Path, weights: Path, conf: float) -> dict:
    """mAP50 of the served detector on composites over held-out photos and on rendered scenes, its false
    detections on each held-out real frame once, and ms per frame (models.store.eval)."""
    dataset = SCRATCH / "real_scenes_test"
    shutil.rmtree(dataset, ignore_errors=True)
    looks = catalogue_looks()
    write_split(
        dataset, "test_composite", looks, PhotoPool(pictures(corpus, "heldout")), 7, 320, composites=TEST_SCENES
    )
    write_split(dataset, "test_rendered", looks, None, 8, 320, rendered=TEST_SCENES)
    metrics = evaluate(weights, dataset, corpus, catalogue_classes(), conf)
    metrics["offline_false_detections_per_1000"] = metrics.pop("phantoms_per_1000")
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/real_scenes"))
    parser.add_argument("--out", default="real_scenes.json")
    args = parser.parse_args()
    stills, videos = pictures(args.corpus, "heldout"), held_out_videos(args.corpus)
    if not stills:
        raise SystemExit(
            f"no held-out pictures in {args.corpus}: build the corpus with `python -m models.store.real_scenes`"
        )
    scenes = [(p.name, camera_frames(p, FRAMES_PER_PICTURE, i)) for i, p in enumerate(stills)]
    scenes += [(frames[0].parent.name, video_frames(frames)) for frames in videos]
    with streamforge_server("real_scenes.log", ray_environment()) as url:
        results = asyncio.run(run(url, scenes))
    frames = sum(r["processed"] for r in results)
    false = sum(len(r["detections"]) for r in results)
    settings = AppSettings()
    report = {
        "pictures": len(stills), "videos": {frames[0].parent.name: len(frames) for frames in videos}, "frames": frames,
        "phantom_cart_items": sum(r["cart_items"] for r in results),
        "false_detections_per_1000": round(1000 * false / max(frames, 1), 1),
        "frames_with_a_false_detection": round(sum(r["fooled"] for r in results) / max(frames, 1), 4),
        **accuracy(args.corpus, project_path(settings.store.detector_weights), settings.store.detector_conf),
        "worst": sorted(({"scene": r["scene"], "detections": len(r["detections"]), "cart_items": r["cart_items"],
                          "top_score": max((d["score"] for d in r["detections"]), default=0.0)}
                         for r in results if r["detections"]), key=lambda w: -w["detections"])[:10],
    }
    write_report(args.out, report, "worst")


if __name__ == "__main__":
    main()
