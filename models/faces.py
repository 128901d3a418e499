"""Face encodings (face_recognition / dlib) and matching against registered users."""

from __future__ import annotations

import numpy as np


def face_encodings(rgb: np.ndarray, model: str = "hog", upsample: int = 1) -> list[np.ndarray]:
    """128-d encodings of the faces in an RGB image, largest face first. model: "hog" (CPU) or "cnn" (GPU)."""
    import face_recognition  # heavy import (dlib models): only where faces are encoded

    locations = face_recognition.face_locations(rgb, number_of_times_to_upsample=upsample, model=model)
    locations.sort(key=lambda box: -(box[2] - box[0]) * (box[1] - box[3]))
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
