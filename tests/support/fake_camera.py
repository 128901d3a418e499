"""A YUV4MPEG2 (C420) video for Chromium's fake camera, made from real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_y4m(
    path: Path, segments: list[tuple[np.ndarray, float]], fps: int = 10, size: tuple[int, int] = (640, 480)
) -> Path:
    """Write (RGB image, seconds) segments, each resized to `size`, as one looping y4m file."""
    w, h = size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, seconds in segments:
            bgr = cv2.cvtColor(cv2.resize(image, (w, h)), cv2.COLOR_RGB2BGR)
            yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()  # planar Y, U, V
            for _ in range(int(seconds * fps)):
                f.write(b"FRAME\n" + yuv)
    return path
