"""Per-message costs on the ingress and face-matcher paths, in-process (no server): validating a twin batch
(whole batch at once vs row by row) and searching a Full HD kiosk frame for faces (full size vs capped).

    python -m bench.ingress_costs            # writes bench/results/ingress_costs.json
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
from skimage import data

from bench.run_suite import RESULTS
from models.store.faces import face_locations
from serve_app.twin.protocol import batch_rows, signal_row

SIGNALS = [f"signal_{i}" for i in range(9)]  # the demo ensemble's boundary signals: 9


def shopper_in_full_hd_frame() -> np.ndarray:
    """A 1920x1080 RGB camera frame with the astronaut's face ~180 px wide (a shopper close to a Full HD camera)."""
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[28:1052, 448:1472] = cv2.resize(data.astronaut(), (1024, 1024))
    return frame


def _ms(work, repeats: int) -> float:
    """Median milliseconds of `repeats` calls of `work()`."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        work()
        times.append((time.perf_counter() - t) * 1000)
    return round(float(np.median(times)), 3)


def batch_validation(rows: int = 256, repeats: int = 200) -> dict:
    """A well-formed `predict_batch` of `rows` rows: `batch_rows` (whole batch) vs `signal_row` per row."""
    values = np.random.default_rng(0).normal(size=(rows, len(SIGNALS)))
    batch = [dict(zip(SIGNALS, map(float, row))) for row in values]
    return {"rows": rows,
            "whole_batch_ms": _ms(lambda: batch_rows({"batch": batch}, SIGNALS, rows), repeats),
            "row_by_row_ms": _ms(lambda: np.asarray([signal_row(v, SIGNALS) for v in batch]), repeats)}


def face_search(search_max_side: int = 640, repeats: int = 5) -> dict:
    """HOG face search (upsample 0, as kiosks use) on a 1920x1080 frame at full size vs at `search_max_side`."""
    frame = shopper_in_full_hd_frame()
    return {"frame": "1920x1080", "search_max_side": search_max_side,
            "full_size_ms": _ms(lambda: face_locations(frame, upsample=0), repeats),
            "capped_ms": _ms(lambda: face_locations(frame, upsample=0, search_max_side=search_max_side), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="batch validations; face searches: a fortieth")
    args = parser.parse_args()
    result = {"batch_validation": batch_validation(repeats=args.repeats),
              "face_search": face_search(repeats=max(1, args.repeats // 40))}
    print(result)
    (RESULTS / "ingress_costs.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
