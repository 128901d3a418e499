"""Product enrollment and detector versions against the real server: admin-only routes and their errors,
an enrollment trained end to end on the Ray cluster (the CI-sized model is bad: the gate refuses it and the
old detector stays live), the hot swap of the live version under kiosk load, and rollback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import cv2
import httpx
import numpy as np
import pytest
import torch

from deployments.shared.detector_versions import CONFIGURED, DetectorVersions
from models.store.cutout import cut_out
from serve_app.settings import AppSettings
from serve_app.store.enrollment import STALE_AFTER_S, EnrollmentRecords, train_enrollment
from tests.support.detector import blind_model, product_photos
from tests.support.kiosk import kiosk
from tests.support.paths import PROJECT_ROOT
from tests.support.server import CLIENT_TOKEN, ENROLLMENT
from tests.support.store_frames import product_frame


def finished(server, enrollment_id: str, timeout_s: float = 420) -> tuple[dict, list[float]]:
    """Poll the enrollment until its job ends; (final record, the progress values seen)."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = server.api.get(f"/api/enrollments/{enrollment_id}").json()
        seen.append(record["progress"])
        if record["status"] not in ("queued", "training"):
            return record, seen
        time.sleep(1.0)
    raise AssertionError(f"enrollment still {record['status']} after {timeout_s} s: {record['message']}")


def test_enrollment_routes_are_for_admins_and_refuse_bad_input(server):
    client = httpx.Client(base_url=server.http, headers=server.headers(CLIENT_TOKEN), timeout=30)
    assert client.post("/api/enrollments", json={"sku": "x", "name": "x", "price": 1}).status_code == 403
    assert client.get("/api/detector/versions").status_code == 403
    assert client.put("/api/detector/live", json={"version": 0}).status_code == 403
    assert server.api.post("/api/enrollments", json={"sku": "tea-yuancui", "name": "x", "price": 1}).status_code == 409
    assert server.api.post("/api/enrollments", json={"sku": "bad sku!", "name": "x", "price": 1}).status_code == 422
    created = server.api.post("/api/enrollments", json={"sku": "cup-refusals", "name": "Cup", "price": 30})
    assert created.status_code == 201
    path = f"/api/enrollments/{created.json()['enrollment_id']}"
    assert server.api.post(path + "/photos", json={"photos": ["not base64!"]}).status_code == 422
    not_an_image = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * 100).decode()
    assert server.api.post(path + "/photos", json={"photos": [not_an_image]}).status_code == 422
    assert server.api.post(path + "/train").status_code == 409  # no photos yet
    added = server.api.post(path + "/photos", json={"photos": product_photos(2)})
    assert added.status_code == 200 and len(added.json()["photos"]) == 2
    assert server.api.put(path + "/photos/0/box", json={"box": [5, 5, 10, 10]}).status_code == 422
    assert server.api.put(path + "/photos/7/box", json={"box": [0, 0, 100, 100]}).status_code == 404
    # an index the database cannot store as an integer is refused, not a server error
    assert server.api.put(path + f"/photos/{2 ** 63}/box", json={"box": [0, 0, 100, 100]}).status_code == 422
    assert server.api.get(path + f"/photos/{2 ** 63}/photo.jpg").status_code == 422
    assert server.api.get(path + "/photos/0/secret.txt").status_code == 404
    assert server.api.post(path + "/train").status_code == 409  # fewer than min_photos
    assert server.api.get("/api/enrollments/nope").status_code == 404
    assert server.api.put("/api/detector/live", json={"version": 999}).status_code == 404


def test_one_enrollment_trains_at_a_time_until_its_job_goes_silent(server):
    records = EnrollmentRecords(server.mongo_uri, name="enrollment-records-test")
    records.ensure_schema()
    photos = [base64.b64decode(p) for p in product_photos(2)]
    cutouts = [(p, cut_out(cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR))) for p in photos]
    first = records.create("cup-a", "Cup A", 1)["enrollment_id"]
    assert records.add_photos(first, cutouts, max_photos=3) is not None
    assert records.add_photos(first, cutouts, max_photos=3) is None  # 4 > 3
    assert records.claim(first, min_photos=3) is None and records.claim(first, min_photos=2)["status"] == "queued"
    assert records.claim(first, min_photos=2) is None  # once
    assert records.add_photos(first, cutouts[:1], max_photos=3) is None  # no photos once queued
    assert records.training()["enrollment_id"] == first
    records.enrollments.update_one({"enrollment_id": first}, {"$set": {"updated_at": time.time() - STALE_AFTER_S - 1}})
    assert records.training() is None  # its job reported nothing for too long


async def _stream(server, session_id: str, stop: asyncio.Event, frame: bytes) -> list[list[dict]]:
    """A kiosk showing the same products at ~10 fps until `stop`; the detections of every frame (the
    connection must stay open throughout)."""
    answers = []
    async with kiosk(server, session_id) as ws:
        while not stop.is_set():
            await ws.send(frame)
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if message["type"] == "detections":
                    answers.append(message["detections"])
                    break
            await asyncio.sleep(0.1)
    return answers


def layer_weights(checkpoint: bytes) -> dict[str, torch.Tensor]:
    """The convolution weights of an ultralytics checkpoint, by parameter name ("model.<layer>. ...")."""
    saved = torch.load(io.BytesIO(checkpoint), weights_only=False, map_location="cpu")
    model = saved.get("ema") or saved["model"]
    return {k: v for k, v in model.state_dict().items() if k.endswith("conv.weight")}


def test_an_enrollment_trains_on_the_cluster_and_the_gate_refuses_a_bad_model(server):
    created = server.api.post("/api/enrollments", json={"sku": "cup-espresso", "name": "Espresso cup", "price": 90})
    enrollment_id = created.json()["enrollment_id"]
    path = f"/api/enrollments/{enrollment_id}"
    record = server.api.post(path + "/photos", json={"photos": product_photos(6)}).json()
    assert len(record["photos"]) == 6 and all(p["warning"] is None for p in record["photos"])
    cutout = server.api.get(path + "/photos/0/cutout.png")
    assert cutout.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(cutout.content, np.uint8), cv2.IMREAD_UNCHANGED).shape[2] == 4
    recut = server.api.put(path + "/photos/0/box", json={"box": [60, 20, 500, 380]}).json()
    x0, y0, x1, y1 = recut["photos"][0]["box"]
    assert x0 >= 60 and y0 >= 20 and x1 <= 500 and y1 <= 380  # cut again inside the admin's box
    frame = product_frame([2], seed=31)

    async def scenario():
        stop = asyncio.Event()
        watching = asyncio.create_task(_stream(server, "enroll-watch", stop, frame))
        started = server.api.post(path + "/train")
        assert started.status_code == 202 and started.json()["status"] == "queued"
        assert server.api.post(path + "/train").status_code == 409  # once
        result = await asyncio.to_thread(finished, server, enrollment_id)
        stop.set()
        return result, await watching

    (record, progress), answers = asyncio.run(scenario())
    assert record["status"] == "refused", record
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any("cup-espresso: mAP50" in reason for reason in record["refused"])
    assert record["metrics"]["real_frames"] > 0 and "cup-espresso" in record["metrics"]["composite_map50_per_class"]
    versions = server.api.get("/api/detector/versions").json()
    assert versions["live"] == CONFIGURED
    stored = next(v for v in versions["versions"] if v["version"] == record["version"])
    assert stored["status"] == "refused" and stored["meta"]["refused"] == record["refused"]
    assert "hard_negatives" not in stored  # training data, not for the listing
    taught_version = DetectorVersions(server.mongo_uri).get(record["version"], files=True)
    taught = taught_version["hard_negatives"]
    shipped = json.loads((PROJECT_ROOT / "data" / "detector" / "store_detector.json").read_text())["hard_negatives"]
    assert shipped and taught[:len(shipped)] == shipped  # what the live model was taught stays with the new one
    assert len(taught) <= len(shipped) + ENROLLMENT["hard_negatives"]
    new, live = layer_weights(taught_version["weights"]), layer_weights((PROJECT_ROOT / "data" / "detector" /
                                                                         "store_detector.pt").read_bytes())
    backbone = [k for k in live if int(k.split(".")[1]) < AppSettings().enrollment.freeze]
    assert backbone and all(torch.equal(new[k], live[k]) for k in backbone)  # kept as the live model has it
    assert any(not torch.equal(new[k], live[k]) for k in live if k not in backbone)  # neck and head learned
    assert server.api.put("/api/detector/live", json={"version": record["version"]}).status_code == 409
    assert all(p["id"] != "cup-espresso" for p in server.api.get("/api/products").json()["products"])
    assert answers and all({d["class_id"] for d in a} == {2} for a in answers)  # the old model answered throughout


def test_the_live_version_is_swapped_under_kiosk_load_and_rolled_back(server):
    blind = DetectorVersions(server.mongo_uri).add(blind_model(), b"", {"classes": {}, "imgsz": 320}, "passed", "test")
    frame = product_frame([0, 1], seed=32)

    async def scenario():
        stop = asyncio.Event()
        kiosks = [asyncio.create_task(_stream(server, f"swap-{i}", stop, frame)) for i in range(4)]
        await asyncio.sleep(2)
        assert server.api.put("/api/detector/live", json={"version": blind}).json() == {"live": blind}
        await asyncio.sleep(6)  # replicas check every 2 s
        assert server.api.put("/api/detector/live", json={"version": CONFIGURED}).status_code == 200
        await asyncio.sleep(6)
        stop.set()
        return await asyncio.gather(*kiosks)

    for answers in asyncio.run(scenario()):
        seen = [bool(a) for a in answers]
        assert seen[0] and seen[-1]  # the shipped detector before the swap and after the rollback
        swapped = seen.index(False)
        back = swapped + seen[swapped:].index(True)
        assert not any(seen[swapped:back]) and all(seen[back:])  # one swap each way, no flicker
    assert server.api.get("/api/detector/versions").json()["live"] == CONFIGURED


def test_a_model_that_passes_the_gate_goes_live_with_its_product_in_the_catalogue(server, tmp_path):
    records = EnrollmentRecords(server.mongo_uri)
    record = records.create("cup-lungo", "Lungo cup", 80)
    photos = [base64.b64decode(p) for p in product_photos(5)]
    records.add_photos(
        record["enrollment_id"],
        [(p, cut_out(cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR))) for p in photos],
        20,
    )
    lenient = {**ENROLLMENT, "new_class_map50": 0.0, "max_class_drop": 1.0, "max_phantom_increase": 1e9,
               "real_scenes": str(server.results_dir.parent / "real_scenes"), "work_dir": str(tmp_path)}
    settings = AppSettings.model_validate({"enrollment": lenient})
    train_enrollment(server.mongo_uri, record["enrollment_id"], settings)
    done = records.get(record["enrollment_id"])
    try:
        assert done["status"] == "enrolled" and done["refused"] == [], done
        assert server.api.get("/api/detector/versions").json()["live"] == done["version"]
        products = {p["id"]: p for p in server.api.get("/api/products").json()["products"]}
        assert products["cup-lungo"]["yolo_class_id"] == done["class_id"] and done["class_id"] not in (0, 1, 2, 3)
        stored = DetectorVersions(server.mongo_uri).get(done["version"])
        assert stored["meta"]["classes"][str(done["class_id"])] == "cup-lungo"
    finally:
        assert server.api.put("/api/detector/live", json={"version": CONFIGURED}).status_code == 200


async def _until(ws, frame: bytes, found: bool, timeout_s: float = 60) -> list[dict]:
    """Send the frame until its detections are (not) empty; the last detections."""
    deadline = time.monotonic() + timeout_s
    while True:
        await ws.send(frame)
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != "detections":
            pass
        if bool(message["detections"]) == found or time.monotonic() > deadline:
            return message["detections"]
        await asyncio.sleep(0.3)


@pytest.mark.restarts_server
def test_the_detector_pool_replicas_follow_the_live_version(server):
    server.in_pool_mode()  # frames through the YOLODetector deployment
    blind = DetectorVersions(server.mongo_uri).add(blind_model(), b"", {"classes": {}, "imgsz": 320}, "passed", "test")
    frame = product_frame([3], seed=34)

    async def scenario():
        async with kiosk(server, "pool-swap") as ws:
            before = await _until(ws, frame, True)
            server.api.put("/api/detector/live", json={"version": blind}).raise_for_status()
            swapped = await _until(ws, frame, False)
            server.api.put("/api/detector/live", json={"version": CONFIGURED}).raise_for_status()
            return before, swapped, await _until(ws, frame, True)

    before, swapped, back = asyncio.run(scenario())
    assert [d["class_id"] for d in before] == [3] and swapped == [] and back == before
