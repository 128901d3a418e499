"""Real JPEG frames for store tests: rendered catalogue products, empty scenes and real face photos."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from models.store_render import catalogue_looks, jpeg_bytes, render_scene

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def product_frame(class_ids: list[int], seed: int, size: int = 480) -> bytes:
    """A scene showing exactly these catalogue products (no distractors)."""
    image, labels = render_scene(np.random.default_rng(seed), catalogue_looks(), size=size, classes=class_ids, distractors=0)
    return jpeg_bytes(image)


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


def stranger_at_kiosk() -> bytes:
    """A real face that nobody registered: one person cropped from a group photo."""
    group = cv2.imread(str(FIXTURES / "six_people.jpg"))
    crop = group[230:450, 1060:1280]
    return jpeg_bytes(cv2.cvtColor(cv2.resize(crop, (480, 480)), cv2.COLOR_BGR2RGB))


def as_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
