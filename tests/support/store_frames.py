"""Real JPEG frames for store tests: rendered catalogue products, empty scenes and real face photos."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from skimage import data

from models.store.render import catalogue_looks, jpeg_bytes, render_scene
from tests.support.paths import FIXTURES


def product_frame(class_ids: list[int], seed: int, size: int = 480) -> bytes:
    """A shopper holding up exactly these catalogue products (no distractors): the scene is the same for
    the same products, and `seed` moves the camera a few pixels and changes the light, as consecutive
    frames of a real camera do."""
    layout = 1000 + sum(10 ** i * (c + 1) for i, c in enumerate(class_ids))
    image, _ = render_scene(np.random.default_rng(layout), catalogue_looks(), size=size, classes=class_ids,
                            distractors=0)
    rng = np.random.default_rng(seed)
    shift = np.float32([[1, 0, rng.uniform(-6, 6)], [0, 1, rng.uniform(-6, 6)]])
    moved = cv2.warpAffine(image, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
    lit = np.clip(moved.astype(np.float32) * rng.uniform(0.92, 1.08) + rng.normal(0, 3, moved.shape), 0, 255)
    return jpeg_bytes(lit.astype(np.uint8))


def empty_frame(seed: int, size: int = 480) -> bytes:
    image, _ = render_scene(np.random.default_rng(seed), catalogue_looks(), size=size, classes=[], distractors=0)
    return jpeg_bytes(image)


def astronaut_photo() -> bytes:
    """Registration photo: scikit-image's astronaut (a real face photo)."""
    return jpeg_bytes(data.astronaut())


def astronaut_at_kiosk() -> bytes:
    """The same person, another crop and scale, as a kiosk camera might see her."""
    crop = data.astronaut()[10:330, 80:400]
    return jpeg_bytes(cv2.resize(crop, (640, 640)))


# faces in tests/fixtures/six_people.jpg as (top, right, bottom, left), as face_recognition finds them
GROUP_FACES = [(283, 1226, 390, 1118), (283, 175, 390, 67), (367, 832, 474, 724), (295, 557, 402, 450),
               (67, 999, 196, 870), (176, 364, 265, 275)]


def group_face(person: int, margin: float, size: int) -> np.ndarray:
    """One person of the group photo (RGB): the face box grown by `margin` of its size, resized square."""
    group = cv2.cvtColor(cv2.imread(str(FIXTURES / "six_people.jpg")), cv2.COLOR_BGR2RGB)
    top, right, bottom, left = GROUP_FACES[person]
    pad = int(margin * (bottom - top))
    crop = group[max(0, top - pad):bottom + pad, max(0, left - pad):right + pad]
    return cv2.resize(crop, (size, size))


def stranger_at_kiosk() -> bytes:
    """A real face that nobody registers in the tests (person 0 of the group photo)."""
    return jpeg_bytes(group_face(0, 1.0, 480))


def as_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
