"""Teaching the store a real product: 10 photos of a box turned in a hand, enrolled through the server's
admin API while a kiosk keeps streaming.

    python -m models.store.real_scenes --out data/real_scenes     # the corpus (and opencv-doc's box video)
    python -m bench.enrollment                               # ~20 minutes on 2 cores

The product is the box in OpenCV's sample video `box.mp4` (opencv-doc; kept out of the real-scene
corpus). Ten frames from the first two thirds of the video are the admin's photos; the admin's box
around the product is found by its colour, as an admin would drag it. The job runs with configs/serve.yaml
as shipped. Measured: minutes from the first upload until the new version is live (`enroll_minutes`),
the gate's metrics, the kiosk's frames and disconnections during the whole enrollment, and afterwards how
often the new product is detected in the video's last third (frames never used for training).
Writes bench/results/enrollment.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time

import cv2
import httpx
import numpy as np
import websockets
from tqdm import tqdm

from bench.run_suite import streamforge_server, write_report
from models.store.real_scenes import SYSTEM_FOLDERS, video_frames
from models.store.render import catalogue_looks, jpeg_bytes, render_scene
from serve_app.settings import ray_environment

PRODUCT_VIDEO = SYSTEM_FOLDERS[2] / "opencv4" / "html" / "box.mp4.gz"
PHOTOS = 10


def product_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    """The yellow box in a frame of the product video, as an admin would drag a box around it."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    mask = cv2.morphologyEx(cv2.inRange(hsv, (12, 90, 90), (35, 255, 255)), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    x, y, w, h = cv2.boundingRect(max(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0],
                                      key=cv2.contourArea))
    margin = 8
    return (
        max(0, x - margin),
        max(0, y - margin),
        min(frame.shape[1], x + w + margin),
        min(frame.shape[0], y + h + margin),
    )


async def kiosk(url: str, name: str, frames: list[bytes], stop: asyncio.Event | None, fps: float) -> dict:
    """Stream `frames` (round and round until `stop`, or once) as one kiosk; what came back."""
    answered, disconnects, with_class, cart = 0, 0, [], {}
    async with websockets.connect(f"{url}/ws/{name}", max_size=2 ** 24) as ws:
        i = 0
        while (stop is None and i < len(frames)) or (stop is not None and not stop.is_set()):
            await ws.send(frames[i % len(frames)])
            i += 1
            while True:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                except websockets.ConnectionClosed:
                    disconnects += 1
                    return {"answered": answered, "disconnects": disconnects, "classes": with_class, "cart": cart}
                if message["type"] == "detections":
                    answered += 1
                    with_class.append({d["class_id"] for d in message["detections"]})
                    break
                if message["type"] == "cart_updated":
                    cart = {line["product_id"]: line["quantity"] for line in message["cart"]}
            await asyncio.sleep(1 / fps)
    return {"answered": answered, "disconnects": disconnects, "classes": with_class, "cart": cart}


async def enroll(url: str, photos: list[np.ndarray], held_out: list[bytes]) -> dict:
    http = url.replace("ws://", "http://")
    async with httpx.AsyncClient(base_url=http, timeout=300) as api:
        stop = asyncio.Event()
        shown = [
            jpeg_bytes(render_scene(np.random.default_rng(s), catalogue_looks(), 480, [1], 0)[0]) for s in range(20)
        ]
        watching = asyncio.create_task(kiosk(url, "enroll-watch", shown, stop, 5.0))
        started = time.monotonic()
        created = await api.post("/api/enrollments", json={"sku": "tea-box", "name": "Tea box", "price": 120})
        if created.status_code != 201:
            raise RuntimeError(f"the server refused the enrollment: {created.status_code} {created.text}")
        record = created.json()
        path = f"/api/enrollments/{record['enrollment_id']}"
        encoded = [base64.b64encode(jpeg_bytes(cv2.cvtColor(p, cv2.COLOR_BGR2RGB), 92)).decode() for p in photos]
        record = (await api.post(path + "/photos", json={"photos": encoded})).json()
        for i, photo in enumerate(photos):  # the admin's boxes (scaled like the stored photos)
            stored = cv2.imdecode(np.frombuffer((await api.get(f"{path}/photos/{i}/photo.jpg")).content, np.uint8), 1)
            box = product_box(stored)
            record = (await api.put(f"{path}/photos/{i}/box", json={"box": list(box)})).json()
        assert (await api.post(path + "/train")).status_code == 202
        with tqdm(total=100, desc="enrollment", unit="%") as bar:
            while record["status"] in ("collecting", "queued", "training"):
                await asyncio.sleep(5)
                record = (await api.get(path)).json()
                bar.set_postfix_str(record.get("message", ""))
                bar.update(round(100 * record["progress"]) - bar.n)
        minutes = (time.monotonic() - started) / 60
        await asyncio.sleep(5)  # replicas check the live version every 2 s
        stop.set()
        during = await watching
        after = await kiosk(url, "enroll-check", held_out, None, 10.0)
    class_id = record.get("class_id")
    return {
        "status": record["status"],
        "message": record["message"],
        "version": record.get("version"),
        "enroll_minutes": round(minutes, 1) if record["status"] == "enrolled" else None,
        "minutes": round(minutes, 1),
        "photos": len(record["photos"]),
        "cutout_warnings": [p["warning"] for p in record["photos"] if p["warning"]],
        "gate": {
            "refused": record.get("refused"),
            "candidate": record.get("metrics"),
            "live": record.get("live_metrics"),
        },
        "kiosk_during_enrollment": {"frames_answered": during["answered"], "disconnects": during["disconnects"]},
        "new_product_held_out_frames": len(held_out),
        "new_product_detected_share": round(
            sum(class_id in c for c in after["classes"]) / max(len(after["classes"]), 1), 3
        ),
        "new_product_cart": after["cart"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="enrollment.json")
    args = parser.parse_args()
    if not PRODUCT_VIDEO.exists():
        raise SystemExit(f"{PRODUCT_VIDEO} is missing: apt-get install opencv-doc")
    frames = list(video_frames(PRODUCT_VIDEO))
    split = len(frames) * 2 // 3
    photos = [frames[int(i)] for i in np.linspace(0, split - 1, PHOTOS)]
    held_out = [jpeg_bytes(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames[split:]]
    with streamforge_server("enrollment.log", ray_environment()) as url:
        report = asyncio.run(enroll(url, photos, held_out))
    write_report(args.out, report, "gate")


if __name__ == "__main__":
    main()
