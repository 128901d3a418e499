"""Admin routes that teach the store detector new products and manage detector versions (admins only).

    POST /api/enrollments                        {sku, name, price}        a new enrollment
    POST /api/enrollments/{id}/photos            {photos: [base64, ...]}   photos, cut out at once
    PUT  /api/enrollments/{id}/photos/{i}/box    {box: [x0, y0, x1, y1]}   cut one out again inside a box
    GET  /api/enrollments/{id}/photos/{i}/photo.jpg | cutout.png            what the admin page shows
    POST /api/enrollments/{id}/train                                       start the training job (202)
    GET  /api/enrollments[/{id}]                                           status, progress, metrics
    GET  /api/detector/versions                                            versions, metrics, the live one
    PUT  /api/detector/live                      {version}                 promote or roll back
    GET  /enroll                                                           the admin page
"""
# No `from __future__ import annotations`: FastAPI reads these signatures at import time.

import asyncio
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, field_validator

from models.store.cutout import cut_out
from models.store.real_scenes import pictures
from serve_app.settings import FRONTEND, project_path
from serve_app.store.connection import StoreServices
from serve_app.store.enrollment import start_job
from serve_app.store.protocol import ImageLimits
from serve_app.store.routes import SKU_PATTERN, photo_bytes, store_services

router = APIRouter(tags=["product enrollment"])
# a photo's position in its enrollment; bounded so that no index reaches the database as an integer it cannot store
PhotoIndex = Annotated[int, Path(ge=0, le=2**31, description="the photo's position in the enrollment, from 0")]


class NewEnrollment(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    price: float = Field(ge=0, le=1_000_000)


class EnrollmentPhotos(BaseModel):
    photos: list[str] = Field(min_length=1, max_length=20, description="base64 JPEG/PNG photos (data URLs accepted)")


class CutoutBox(BaseModel):
    box: tuple[int, int, int, int] = Field(description="x0, y0, x1, y1 in the stored photo's pixels")

    @field_validator("box")
    @classmethod
    def _in_range(cls, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if not all(-100_000 <= v <= 100_000 for v in box):
            raise ValueError("box coordinates must be within +-100000")
        return box


class LiveVersion(BaseModel):
    version: int = Field(ge=0, le=2**31, description="0: the detector file named in the configuration")


def _scaled_jpeg(data: bytes, side: int) -> tuple[bytes, np.ndarray]:
    """A photo scaled down to `side` px (longest side) as JPEG bytes and BGR pixels; 422 if it does not decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise HTTPException(422, "a photo does not decode as an image")
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes(), image


def _found(record: dict | None, enrollment_id: str) -> dict:
    if record is None:
        raise HTTPException(404, f"enrollment {enrollment_id!r} not found")
    return record


async def _photo(services: StoreServices, enrollment_id: str, index: int) -> dict:
    """One stored photo with its bytes (only that one is read); 404 when there is none."""
    photo = await asyncio.to_thread(services.enrollments.photo, enrollment_id, index)
    if photo is None:
        raise HTTPException(404, f"photo {index} of enrollment {enrollment_id!r} not found")
    return photo


@router.get("/enroll", include_in_schema=False)
async def enroll_page() -> FileResponse:
    return FileResponse(FRONTEND / "enroll.html")


@router.post("/api/enrollments", status_code=201)
async def new_enrollment(request: NewEnrollment, services: StoreServices = Depends(store_services)) -> dict:
    """Start enrolling a product that is not in the catalogue yet (409 if its SKU is)."""
    if any(p["id"] == request.sku for p in await asyncio.to_thread(services.db.products)):
        raise HTTPException(409, f"product {request.sku!r} is already in the catalogue")
    return await asyncio.to_thread(services.enrollments.create, request.sku, request.name, request.price)


@router.get("/api/enrollments")
async def enrollments(services: StoreServices = Depends(store_services)) -> dict:
    """Every enrollment, newest first (without photos)."""
    return {"enrollments": await asyncio.to_thread(services.enrollments.summaries)}


@router.get("/api/enrollments/{enrollment_id}")
async def enrollment(enrollment_id: str, services: StoreServices = Depends(store_services)) -> dict:
    """An enrollment: status (collecting, queued, training, enrolled, refused, passed, failed), progress
    0-1, message, each photo's cut-out box and warning, and after training the metrics and the gate's reasons."""
    return _found(await asyncio.to_thread(services.enrollments.get, enrollment_id), enrollment_id)


@router.post("/api/enrollments/{enrollment_id}/photos")
async def add_photos(
    enrollment_id: str, request: EnrollmentPhotos, services: StoreServices = Depends(store_services)
) -> dict:
    """Add photos (any background); each is cut out at once. 409 when training started or over the limit."""
    options = services.settings.enrollment
    limits = ImageLimits(services.settings.limits.max_http_body_bytes, services.settings.limits.max_image_pixels)
    scaled = [_scaled_jpeg(photo_bytes(i, p, limits), options.photo_side) for i, p in enumerate(request.photos)]
    cutouts = await asyncio.gather(*(asyncio.to_thread(cut_out, image) for _, image in scaled))
    updated = await asyncio.to_thread(services.enrollments.add_photos, enrollment_id,
                                      [(jpeg, c) for (jpeg, _), c in zip(scaled, cutouts)], options.max_photos)
    if updated is None:
        _found(await asyncio.to_thread(services.enrollments.get, enrollment_id), enrollment_id)
        raise HTTPException(409, f"photos can be added before training starts, at most {options.max_photos}")
    return updated


@router.put("/api/enrollments/{enrollment_id}/photos/{index}/box")
async def recut_photo(enrollment_id: str, index: PhotoIndex, request: CutoutBox,
                      services: StoreServices = Depends(store_services)) -> dict:
    """Cut a photo out again inside the admin's box."""
    jpeg = bytes((await _photo(services, enrollment_id, index))["photo"])
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    try:
        cutout = await asyncio.to_thread(cut_out, image, request.box)
    except ValueError as err:
        raise HTTPException(422, str(err)) from None
    updated = await asyncio.to_thread(services.enrollments.replace_cutout, enrollment_id, index, jpeg, cutout)
    if updated is None:
        raise HTTPException(409, "training has started: photos can no longer change")
    return updated


@router.get("/api/enrollments/{enrollment_id}/photos/{index}/{kind}")
async def photo_file(enrollment_id: str, index: PhotoIndex, kind: str,
                     services: StoreServices = Depends(store_services)) -> Response:
    """A stored photo (`photo.jpg`) or its cut-out with transparency (`cutout.png`)."""
    if kind not in ("photo.jpg", "cutout.png"):
        raise HTTPException(404, f"{kind!r} not found: photo.jpg or cutout.png")
    photo = await _photo(services, enrollment_id, index)
    field, media = ("photo", "image/jpeg") if kind == "photo.jpg" else ("cutout", "image/png")
    return Response(bytes(photo[field]), media_type=media)


@router.post("/api/enrollments/{enrollment_id}/train", status_code=202)
async def train(enrollment_id: str, services: StoreServices = Depends(store_services)) -> dict:
    """Start the training job on the Ray cluster; follow it with GET /api/enrollments/{id}."""
    options = services.settings.enrollment
    record = _found(await asyncio.to_thread(services.enrollments.get, enrollment_id), enrollment_id)
    if not pictures(project_path(options.real_scenes), "heldout"):
        raise HTTPException(409, f"no real-scene corpus in {options.real_scenes}: build it with "
                                 "`python -m models.store.real_scenes` (docs/store.md)")
    busy = await asyncio.to_thread(services.enrollments.training)
    if busy is not None:
        raise HTTPException(409, f"enrollment {busy['enrollment_id']} is training: one trains at a time")
    if record["status"] != "collecting" or len(record["photos"]) < options.min_photos:
        raise HTTPException(409, f"training starts once, with at least {options.min_photos} photos "
                                 f"(this one: {record['status']}, {len(record['photos'])} photos)")
    claimed = await asyncio.to_thread(services.enrollments.claim, enrollment_id, options.min_photos)
    if claimed is None:
        raise HTTPException(409, "training has already started")
    await asyncio.to_thread(start_job, services.mongo_uri, enrollment_id, services.settings)
    return claimed


@router.get("/api/detector/versions")
async def detector_versions(services: StoreServices = Depends(store_services)) -> dict:
    """The live version and every trained one (status passed/refused, metrics), newest first."""
    live, stored = await asyncio.gather(asyncio.to_thread(services.detector_versions.live),
                                        asyncio.to_thread(services.detector_versions.catalog))
    configured = {"version": 0, "status": "configured", "source": services.settings.store.detector_weights}
    return {"live": live, "versions": stored + [configured]}


@router.put("/api/detector/live")
async def set_live(request: LiveVersion, services: StoreServices = Depends(store_services)) -> dict:
    """Make a version live (roll back or forward): 0 or one the gate passed; every replica swaps within seconds."""
    if not await asyncio.to_thread(services.detector_versions.set_live, request.version):
        raise HTTPException(409 if await asyncio.to_thread(services.detector_versions.get, request.version) else 404,
                            f"version {request.version} is not one the quality gate passed")
    return {"live": request.version}
