"""Detector models and product photos for the store tests: a blind ONNX model that finds nothing, photos of the
product the enrollment tests teach."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import onnx
from onnx import helper, numpy_helper
from skimage import data

from serve_app.settings import AppSettings, project_path

WEIGHTS = project_path(AppSettings().store.detector_weights)


def blind_model(path=WEIGHTS) -> bytes:
    """The detector at `path` with every class score multiplied by 0: a real ONNX model that finds nothing."""
    model = onnx.load(str(path))
    graph = model.graph
    output = graph.output[0]
    channels = output.type.tensor_type.shape.dim[1].dim_value  # 4 box values + one score per class
    scale = np.array([1, 1, 1, 1] + [0] * (channels - 4), np.float32).reshape(1, channels, 1)
    graph.initializer.append(numpy_helper.from_array(scale, "blind_scale"))
    for node in graph.node:
        node.output[:] = [f"{o}_seen" if o == output.name else o for o in node.output]
    graph.node.append(helper.make_node("Mul", [f"{output.name}_seen", "blind_scale"], [output.name]))
    return model.SerializeToString()


def product_photos(count: int) -> list[str]:
    """`count` photos of one real product (scikit-image's coffee cup) as a shop owner takes them: from a
    little further or closer, turned, in other light; base64 JPEG."""
    cup = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    h, w = cup.shape[:2]
    rng = np.random.default_rng(11)
    photos = []
    for _ in range(count):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), rng.uniform(0.85, 1.1))
        m[:, 2] += rng.uniform(-20, 20, 2)
        turned = cv2.warpAffine(cup, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        lit = np.clip(turned.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        photos.append(base64.b64encode(cv2.imencode(".jpg", lit)[1].tobytes()).decode())
    return photos
