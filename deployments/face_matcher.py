"""FaceMatcher: recognises registered shoppers in kiosk frames (face_recognition / dlib)."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from deployments.shared.mongo import ShopperRecords
from models.store.detector import decode_image
from models.store.faces import FaceGallery, face_encodings

FACE_WORK_NICENESS = 10  # CPU share ~1/10 of a normal thread's while both want a core
# Registration photos (phone cameras: 12 MP and more) are searched at this size, at upsample 1: faces from
# ~40 px of it, ~4% of the photo's long side (a 12 MP photo searched at full size takes seconds).
REGISTRATION_SEARCH_MAX_SIDE = 1024


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class FaceMatcher:
    """`identify(jpeg)` -> the matching user or None; `encode(photos)` -> one encoding per photo."""

    def __init__(self, mongo_uri: str, tolerance: float = 0.5, model: str = "hog", refresh_s: float = 2.0,
                 kiosk_upsample: int = 0, kiosk_search_max_side: int = 640):
        self.shoppers = ShopperRecords(mongo_uri)
        self.tolerance, self.model, self.refresh_s = tolerance, model, refresh_s
        self.kiosk_upsample, self.kiosk_search_max_side = kiosk_upsample, kiosk_search_max_side
        self.gallery, self.users, self.loaded_version, self.checked_at = FaceGallery(), {}, -1, 0.0
        # dlib's detectors are not thread-safe (concurrent calls segfault): one worker thread runs all face work.
        # It runs at a lower CPU priority (Linux: nice is per thread): a login may wait a few ms, while
        # product detection sharing the cores must not (docs/benchmarks.md).
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlib", initializer=os.nice,
                                         initargs=(FACE_WORK_NICENESS,))

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    def reconfigure(self, config: dict) -> None:
        """user_config: `tolerance` (face distance, lower is stricter), `model` (hog | cnn) and
        `kiosk_upsample`: 0 finds faces of ~80 px and more in kiosk frames (a shopper at the kiosk) in a
        quarter of the time that 1 (faces from ~40 px, a camera further away) takes; `kiosk_search_max_side`:
        larger kiosk frames are searched at this size (1280x720 at 640 px: faces from ~160 px)."""
        self.tolerance = float(config.get("tolerance", self.tolerance))
        self.model = config.get("model", self.model)
        self.kiosk_upsample = int(config.get("kiosk_upsample", self.kiosk_upsample))
        self.kiosk_search_max_side = int(config.get("kiosk_search_max_side", self.kiosk_search_max_side))

    def _refresh(self) -> None:
        """Reload registered users when their registration version moved (any replica may have changed it)."""
        if time.time() - self.checked_at < self.refresh_s:
            return
        self.checked_at = time.time()
        version = self.shoppers.version()
        if version == self.loaded_version:
            return
        gallery, users = FaceGallery(), {}
        for user in self.shoppers.all():
            gallery.add(user["user_id"], user["encodings"])
            users[user["user_id"]] = {"id": user["user_id"], "name": user["name"], "phone": user["phone"]}
        self.gallery, self.users, self.loaded_version = gallery, users, version

    def _find(self, encodings: list) -> dict | None:
        """The registered user closest to any of `encodings`, within the tolerance."""
        self._refresh()
        for encoding in encodings:
            match = self.gallery.match(encoding, self.tolerance)
            if match:
                return {**self.users[match[0]], "distance": round(match[1], 4)}
        return None

    def _identify(self, frame: bytes) -> dict | None:
        image = decode_image(frame)
        if image is None:
            return None
        return self._find(face_encodings(image[:, :, ::-1].copy(), model=self.model, upsample=self.kiosk_upsample,
                                         search_max_side=self.kiosk_search_max_side))

    async def identify(self, frame: bytes) -> dict | None:
        return await self._run(self._identify, frame)

    async def find(self, encodings: list[list[float]]) -> dict | None:
        """The registered user these encodings belong to, if any (used to refuse duplicate registrations)."""
        self.checked_at = 0.0  # always look at the latest registrations
        return await self._run(self._find, encodings)

    def _encode(self, photos: list[bytes]) -> list[list[float]] | str:
        encodings = []
        for i, photo in enumerate(photos):
            image = decode_image(photo)
            if image is None:
                return f"photo {i} is not a decodable image"
            found = face_encodings(image[:, :, ::-1].copy(), model=self.model,
                                   search_max_side=REGISTRATION_SEARCH_MAX_SIDE)
            if not found:
                return f"no face found in photo {i}"
            encodings.append(found[0].tolist())
        return encodings

    async def encode(self, photos: list[bytes]) -> list[list[float]] | str:
        """The largest face's encoding of each photo, or a message saying which photo failed."""
        return await self._run(self._encode, photos)

    def invalidate(self) -> None:
        """Reload users on the next call (after a registration)."""
        self.checked_at, self.loaded_version = 0.0, -1
