"""Product detection with an ultralytics YOLO exported to ONNX: letterbox, ONNX Runtime, NMS.

Pre- and post-processing use OpenCV (`cv2.dnn.blobFromImages`-style letterbox by hand is avoided where
OpenCV has the piece: resize/pad with cv2, class-aware NMS with `cv2.dnn.NMSBoxesBatched`).
Bring your own weights: any ultralytics detection model exported to ONNX works (`.pt` files are
exported on first load when ultralytics is installed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.onnx_runtime import inference_session


@dataclass(frozen=True)
class Detection:
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in source-image pixels

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


def ensure_onnx(weights: Path, imgsz: int = 320) -> Path:
    """An .onnx path for `weights`; exports ultralytics .pt weights beside them on first use."""
    weights = Path(weights)
    if weights.suffix == ".onnx":
        return weights
    target = weights.with_suffix(".onnx")
    if not target.exists():
        from ultralytics import YOLO  # only needed for .pt weights

        YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True)
    return target


def exported_size(session) -> int | None:
    """The image size an ultralytics export records in its ONNX metadata ("[320, 320]"), if any."""
    recorded = session.get_modelmeta().custom_metadata_map.get("imgsz", "")
    sizes = [int(v) for v in recorded.strip("[]").split(",") if v.strip().isdigit()]
    return sizes[0] if sizes else None


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to size x size (grey 114, as ultralytics does)."""
    h, w = image.shape[:2]
    ratio = min(size / h, size / w)
    new_w, new_h = round(w * ratio), round(h * ratio)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_w, new_h) != (w, h) else image
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out = cv2.copyMakeBorder(resized, pad_y, size - new_h - pad_y, pad_x, size - new_w - pad_x,
                             cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return out, ratio, (pad_x, pad_y)


class ProductDetector:
    """Batched detection on BGR images; returns per image a list of Detection."""

    def __init__(self, weights: Path, conf: float = 0.4, iou: float = 0.5, imgsz: int | None = None,
                 intra_op_threads: int = 0, prefer_gpu: bool = True):
        path = ensure_onnx(Path(weights), imgsz or 320)
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.session = inference_session(str(path), intra_op_threads, prefer_gpu)
        shape = self.session.get_inputs()[0].shape
        self.imgsz = (
            imgsz
            or meta.get("imgsz")
            or exported_size(self.session)
            or (shape[2] if isinstance(shape[2], int) else 640)
        )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.conf, self.iou = conf, iou
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """BGR uint8 images of any size -> detections in each image's own pixel coordinates."""
        if not images:
            return []
        prepared = [letterbox(img, self.imgsz) for img in images]
        batch = np.stack([cv2.cvtColor(p[0], cv2.COLOR_BGR2RGB) for p in prepared]).astype(np.float32) / 255.0
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.fixed_batch:  # a model exported without a dynamic batch axis
            outputs = np.concatenate(
                [self.session.run(None, {self.input_name: batch[i : i + 1]})[0] for i in range(len(batch))]
            )
        else:
            outputs = self.session.run(None, {self.input_name: batch})[0]
        return [
            self._postprocess(out, ratio, pad, img.shape)
            for out, (_, ratio, pad), img in zip(outputs, prepared, images)
        ]

    def detect_frames(self, frames: list[bytes]) -> list[list[dict] | dict]:
        """Encoded frames (JPEG/PNG bytes) -> per frame its detections as dicts, or {"error": ...} for a frame
        that does not decode; the decodable frames run as one batch."""
        images = [decode_image(f) for f in frames]
        found = iter(self.detect([img for img in images if img is not None]))
        return [[d.to_dict() for d in next(found)] if img is not None else {"error": "undecodable image"}
                for img in images]

    def _postprocess(self, output: np.ndarray, ratio: float, pad: tuple[int, int], shape) -> list[Detection]:
        preds = output.T  # [anchors, 4 + classes]: cx, cy, w, h, class scores
        scores = preds[:, 4:]
        class_ids = scores.argmax(axis=1)
        best = scores[np.arange(len(scores)), class_ids]
        keep = best >= self.conf
        if not keep.any():
            return []
        boxes, best, class_ids = preds[keep, :4], best[keep], class_ids[keep]
        xywh = np.column_stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2], boxes[:, 3]])
        indices = cv2.dnn.NMSBoxesBatched(xywh.tolist(), best.tolist(), class_ids.tolist(), self.conf, self.iou)
        h, w = shape[:2]
        out = []
        for i in np.asarray(indices).reshape(-1):
            x, y, bw, bh = xywh[i]
            x0 = float(np.clip((x - pad[0]) / ratio, 0, w))
            y0 = float(np.clip((y - pad[1]) / ratio, 0, h))
            x1 = float(np.clip((x + bw - pad[0]) / ratio, 0, w))
            y1 = float(np.clip((y + bh - pad[1]) / ratio, 0, h))
            out.append(Detection(int(class_ids[i]), float(best[i]), (x0, y0, x1, y1)))
        return sorted(out, key=lambda d: -d.score)


def decode_image(data: bytes) -> np.ndarray | None:
    """JPEG/PNG bytes -> BGR image, or None when the bytes are not a decodable image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None
