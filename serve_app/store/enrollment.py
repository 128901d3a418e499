"""Product enrollment: an admin's photos of a new product become a detector that knows it.

An enrollment (MongoDB `enrollments`) collects the product (sku, name, price) and 5-20 photos, each with
its GrabCut cut-out (models.store.cutout; the admin can redo one with a box). Training runs as a
detached Ray actor (`EnrollmentJob`, one per enrollment, named `streamforge-enroll-<id>`, visible on the
Ray dashboard) so it outlives the ingress replica that started it; it reserves `enrollment.cpus` of the
cluster and runs on whichever node has them (a GPU node trains faster). The job fine-tunes the live
detector (models.store.enroll), stores the result as a new detector version with its metrics, and
only if the quality gate passes adds the product to the catalogue and makes the version live: every
replica then swaps it in (deployments.shared.live_detector). Progress is written to the enrollment as it goes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import ray
from bson import Binary
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from deployments.shared.detector_versions import CONFIGURED, DetectorVersions
from deployments.shared.mongo import PUBLIC, connect
from models.store.cutout import Cutout
from models.store.enroll import GateLimits, enroll
from models.store.render import catalogue_looks
from models.store.train import HARD_NEGATIVES, TrainingPlan, kept_hard_negatives
from serve_app.settings import AppSettings, project_path
from serve_app.store.database import StoreDatabase

logger = logging.getLogger("streamforge.enrollment")
PROGRESS_EVERY_S = 1.0
STALE_AFTER_S = 900.0  # a job that reported nothing for this long is gone (its node died): others may train


def sprite_png(sprite: np.ndarray) -> bytes:
    """An RGBA (RGB order) cut-out as PNG bytes."""
    return cv2.imencode(".png", cv2.cvtColor(sprite, cv2.COLOR_RGBA2BGRA))[1].tobytes()


def png_sprite(data: bytes) -> np.ndarray:
    """PNG bytes -> RGBA (RGB order) cut-out."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def _photo_fields(photo_jpeg: bytes, cutout: Cutout) -> dict:
    return {"photo": Binary(photo_jpeg), "cutout": Binary(sprite_png(cutout.sprite)), "box": list(cutout.box),
            "coverage": cutout.coverage, "warning": cutout.warning}


class EnrollmentRecords:
    """The `enrollments` collection (product, training status and result) and `enrollment_photos` (each
    photo with its cut-out, one document each)."""

    def __init__(self, uri: str, name: str = "streamforge"):
        db = connect(uri)[name]
        self.enrollments, self.photos = db.enrollments, db.enrollment_photos

    def ensure_schema(self) -> None:
        """Unique enrollment id; unique photo number within an enrollment."""
        self.enrollments.create_index([("enrollment_id", ASCENDING)], unique=True)
        self.photos.create_index([("enrollment_id", ASCENDING), ("index", ASCENDING)], unique=True)

    def create(self, sku: str, name: str, price: float) -> dict:
        """A new enrollment collecting photos."""
        record = {"enrollment_id": uuid.uuid4().hex[:12], "sku": sku, "name": name, "price": price,
                  "status": "collecting", "progress": 0.0, "message": "add photos", "created_at": time.time()}
        self.enrollments.insert_one(dict(record))
        return self.get(record["enrollment_id"])

    def get(self, enrollment_id: str, files: bool = False) -> dict | None:
        """One enrollment with its `photos` in order; photo and cut-out bytes only with `files`."""
        record = self.enrollments.find_one({"enrollment_id": enrollment_id}, PUBLIC)
        if record is not None:
            projection = PUBLIC if files else {**PUBLIC, "photo": 0, "cutout": 0}
            record["photos"] = list(
                self.photos.find({"enrollment_id": enrollment_id}, projection).sort("index", ASCENDING)
            )
        return record

    def photo(self, enrollment_id: str, index: int) -> dict | None:
        """One photo with its bytes (`photo` JPEG, `cutout` PNG), box and warning; None if there is none."""
        return self.photos.find_one({"enrollment_id": enrollment_id, "index": index}, PUBLIC)

    def summaries(self) -> list[dict]:
        """Every enrollment (without photos), newest first."""
        return list(self.enrollments.find({}, PUBLIC).sort("created_at", -1))

    def _collecting(self, enrollment_id: str) -> bool:
        return self.enrollments.count_documents({"enrollment_id": enrollment_id, "status": "collecting"}) > 0

    def add_photos(self, enrollment_id: str, photos: list[tuple[bytes, Cutout]], max_photos: int) -> dict | None:
        """Append photos while the enrollment is collecting and stays within `max_photos`; None otherwise."""
        if not self._collecting(enrollment_id):
            return None
        first = self.photos.count_documents({"enrollment_id": enrollment_id})
        if first + len(photos) > max_photos:
            return None
        try:
            for i, (jpeg, cutout) in enumerate(photos):
                self.photos.insert_one(
                    {"enrollment_id": enrollment_id, "index": first + i, **_photo_fields(jpeg, cutout)}
                )
        except DuplicateKeyError:  # another upload took these numbers
            return None
        return self.get(enrollment_id)

    def replace_cutout(self, enrollment_id: str, index: int, photo_jpeg: bytes, cutout: Cutout) -> dict | None:
        """Store a photo's new cut-out (while collecting)."""
        if not self._collecting(enrollment_id):
            return None
        self.photos.update_one(
            {"enrollment_id": enrollment_id, "index": index}, {"$set": _photo_fields(photo_jpeg, cutout)}
        )
        return self.get(enrollment_id)

    def claim(self, enrollment_id: str, min_photos: int) -> dict | None:
        """collecting -> queued, once, when it has at least `min_photos`; None otherwise."""
        if self.photos.count_documents({"enrollment_id": enrollment_id}) < min_photos:
            return None
        claimed = self.enrollments.find_one_and_update(
            {"enrollment_id": enrollment_id, "status": "collecting"},
            {"$set": {"status": "queued", "message": "waiting for the cluster", "updated_at": time.time()}})
        return self.get(enrollment_id) if claimed else None

    def training(self) -> dict | None:
        """The enrollment queued or training now, if any (one trains at a time; one whose job has reported
        nothing for STALE_AFTER_S no longer counts)."""
        return self.enrollments.find_one({"status": {"$in": ["queued", "training"]},
                                          "updated_at": {"$gt": time.time() - STALE_AFTER_S}}, PUBLIC)

    def enrolled_cutouts(self, class_ids: list[int]) -> dict[int, list[np.ndarray]]:
        """class id -> cut-outs, of the enrollments that went live with one of these classes."""
        return {
            done["class_id"]: [
                png_sprite(p["cutout"]) for p in self.photos.find({"enrollment_id": done["enrollment_id"]})
            ]
            for done in self.enrollments.find({"status": "enrolled", "class_id": {"$in": class_ids}}, PUBLIC)
        }

    def update(self, enrollment_id: str, **fields) -> None:
        """Set fields (and `updated_at`, the job's heartbeat)."""
        self.enrollments.update_one({"enrollment_id": enrollment_id}, {"$set": {**fields, "updated_at": time.time()}})


@ray.remote(max_restarts=0)
class EnrollmentJob:
    """Runs one enrollment's training to the end, then exits (a detached actor: it outlives its caller)."""

    def run(self, mongo_uri: str, enrollment_id: str, settings: dict) -> None:
        records = EnrollmentRecords(mongo_uri)
        try:
            train_enrollment(mongo_uri, enrollment_id, AppSettings.model_validate(settings))
        except Exception as exc:  # noqa: BLE001 - any failure is reported on the enrollment
            logger.exception("enrollment %s failed", enrollment_id)
            records.update(
                enrollment_id, status="failed", message=f"{type(exc).__name__}: {exc}", finished_at=time.time()
            )
        ray.actor.exit_actor()


def start_job(mongo_uri: str, enrollment_id: str, settings: AppSettings) -> None:
    """Start the enrollment's training job on the cluster (the enrollment must be claimed)."""
    job = EnrollmentJob.options(name=f"streamforge-enroll-{enrollment_id}", lifetime="detached",
                                num_cpus=settings.enrollment.cpus).remote()
    job.run.remote(mongo_uri, enrollment_id, settings.model_dump())


def _live_model(versions: DetectorVersions, settings: AppSettings, work: Path) -> tuple[int, Path, Path, dict]:
    """(live version, its ONNX, its ultralytics weights as files in `work`, its description: classes, imgsz,
    hard negatives)."""
    live = versions.live()
    if live == CONFIGURED:
        onnx = project_path(settings.store.detector_weights).with_suffix(".onnx")
        weights, described = onnx.with_suffix(".pt"), onnx.with_suffix(".json")
        for needed in (weights, described):
            if not needed.exists():
                raise FileNotFoundError(f"{needed} is missing: fine-tuning needs the configured detector's .onnx, "
                                        ".pt (ultralytics weights) and .json (its classes) side by side")
        meta = json.loads(described.read_text())
    else:
        stored = versions.get(live, files=True)
        onnx, weights = work / "live" / "store_detector.onnx", work / "live" / "store_detector.pt"
        meta = {**stored["meta"], HARD_NEGATIVES: stored.get(HARD_NEGATIVES, [])}
        onnx.parent.mkdir(parents=True, exist_ok=True)
        onnx.write_bytes(stored["onnx"])
        weights.write_bytes(stored["weights"])
        onnx.with_suffix(".json").write_text(json.dumps(meta))
    return live, onnx, weights, meta


def _known_products(records: EnrollmentRecords, classes: dict[int, str], catalogue: Path) -> dict:
    """What each class the live model knows looks like: the seed's rendered looks, enrolled cut-outs."""
    looks = catalogue_looks(catalogue)
    known = {c: looks[c] for c in classes if c in looks}
    for class_id, cutouts in records.enrolled_cutouts(list(classes)).items():
        known.setdefault(class_id, cutouts)
    missing = set(classes) - set(known)
    if missing:
        raise ValueError(
            f"the live detector knows classes {sorted(missing)} that no catalogue look or enrollment shows"
        )
    return known


def train_enrollment(mongo_uri: str, enrollment_id: str, settings: AppSettings) -> None:
    """The job: fine-tune, evaluate, gate, store the version; make it live when it passes."""
    records, versions, db = EnrollmentRecords(mongo_uri), DetectorVersions(mongo_uri), StoreDatabase(mongo_uri)
    record = records.get(enrollment_id, files=True)
    options = settings.enrollment
    work = project_path(options.work_dir) / enrollment_id
    shutil.rmtree(work, ignore_errors=True)
    try:
        _train_and_gate(records, versions, db, record, settings, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the result is in MongoDB


def _train_and_gate(records: EnrollmentRecords, versions: DetectorVersions, db: StoreDatabase, record: dict,
                    settings: AppSettings, work: Path) -> None:
    enrollment_id, options = record["enrollment_id"], settings.enrollment
    live, live_onnx, base_weights, live_meta = _live_model(versions, settings, work)
    classes = {int(k): v for k, v in live_meta["classes"].items()}
    known = _known_products(records, classes, project_path(settings.store.catalogue))
    class_id = 1 + max([*classes, *(p["yolo_class_id"] for p in db.products())])
    names = {**classes, class_id: record["sku"]}
    records.update(enrollment_id, status="training", class_id=class_id, base_version=live, started_at=time.time())
    last = [0.0]

    def progress(done: float, what: str) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S or done >= 1.0:
            last[0] = time.monotonic()
            records.update(enrollment_id, progress=round(done, 3), message=what)

    plan = TrainingPlan(rendered=options.rendered, composites=options.composites, negatives=options.negatives,
                        val=options.val, test=options.test, epochs=options.epochs, batch=options.batch,
                        hard_negatives=options.hard_negatives, hard_epochs=0, replay=options.replay,
                        freeze=options.freeze, imgsz=live_meta.get("imgsz", 320))
    limits = GateLimits(options.new_class_map50, options.max_class_drop, options.max_phantom_increase)
    result = enroll(
        known,
        {class_id: [png_sprite(p["cutout"]) for p in record["photos"]]},
        names,
        base_weights,
        live_onnx,
        project_path(options.real_scenes),
        work,
        plan,
        limits,
        settings.store.detector_conf,
        progress,
        kept_hard_negatives(live_meta),
    )
    meta = {"classes": {str(c): n for c, n in names.items()}, "imgsz": plan.imgsz, "metrics": result.candidate,
            "live_metrics": result.live, "refused": result.refused, "enrollment_id": enrollment_id}
    version = versions.add(result.onnx.read_bytes(), result.weights.read_bytes(), meta,
                           "refused" if result.refused else "passed", f"enrollment {enrollment_id} ({record['sku']})",
                           result.hard_negatives)
    outcome = {"version": version, "metrics": result.candidate, "live_metrics": result.live, "refused": result.refused,
               "finished_at": time.time(), "progress": 1.0}
    if result.refused:
        records.update(enrollment_id, status="refused", message="the quality gate refused the model", **outcome)
    elif db.upsert_product(record["sku"], record["name"], record["price"], class_id) is None:
        records.update(
            enrollment_id, status="failed", message=f"detector class {class_id} was taken meanwhile", **outcome
        )
    elif not versions.set_live(version, previous=live):
        records.update(
            enrollment_id, status="passed", message="another version went live meanwhile: promote it by hand", **outcome
        )
    else:
        records.update(enrollment_id, status="enrolled", message=f"version {version} is live", **outcome)
