"""Face encodings (face_recognition / dlib) and matching against registered users."""

from __future__ import annotations

import cv2
import numpy as np


def face_locations(rgb: np.ndarray, model: str = "hog", upsample: int = 1,
                   search_max_side: int | None = None) -> list[tuple[int, int, int, int]]:
    """Face boxes (top, right, bottom, left) in `rgb`'s pixels, largest first. With `search_max_side`, a larger
    image is searched at that size on its long side (as face_recognition's own webcam example does): HOG time
    grows with the pixels (bench.ingress_costs measures it), and the smallest face found grows by the same
    factor."""
    import face_recognition  # heavy import (dlib models): only where faces are searched

    height, width = rgb.shape[:2]
    scale = min(1.0, search_max_side / max(height, width)) if search_max_side else 1.0
    search = rgb
    if scale < 1.0:  # at least 1 px a side, however long and thin the image
        search = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    sy, sx = height / search.shape[0], width / search.shape[1]
    boxes = [(max(0, round(top * sy)), min(width, round(right * sx)), min(height, round(bottom * sy)),
              max(0, round(left * sx)))
             for top, right, bottom, left in face_recognition.face_locations(search, upsample, model)]
    return sorted(boxes, key=lambda box: -(box[2] - box[0]) * (box[1] - box[3]))


def face_encodings(rgb: np.ndarray, model: str = "hog", upsample: int = 1,
                   search_max_side: int | None = None) -> list[np.ndarray]:
    """128-d encodings of the faces in an RGB image, largest face first, each taken from the full-resolution
    image. model: "hog" (CPU) or "cnn" (GPU); `search_max_side`: see `face_locations`."""
    import face_recognition

    locations = face_locations(rgb, model, upsample, search_max_side)
    return face_recognition.face_encodings(rgb, known_face_locations=locations)


class FaceGallery:
    """Registered users' encodings; `match` finds the closest user within a tolerance."""

    def __init__(self):
        self._users: list[str] = []
        self._encodings = np.zeros((0, 128))

    def __len__(self) -> int:
        return len(set(self._users))

    def add(self, user_id: str, encodings: list) -> None:
        encodings = np.asarray(encodings, dtype=np.float64).reshape(-1, 128)
        self._users += [user_id] * len(encodings)
        self._encodings = np.vstack([self._encodings, encodings])

    def match(self, encoding: np.ndarray, tolerance: float = 0.5) -> tuple[str, float] | None:
        """(user_id, distance) of the nearest registered encoding if its distance <= tolerance."""
        if not self._users:
            return None
        distances = np.linalg.norm(self._encodings - np.asarray(encoding)[None, :], axis=1)
        best = int(distances.argmin())
        return (self._users[best], float(distances[best])) if distances[best] <= tolerance else None
