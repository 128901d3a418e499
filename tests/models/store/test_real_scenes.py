"""The real-scene corpus: the same photo at two resolutions is kept once, flat pictures are left out, and
the held-out split depends only on the picture."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

import models.store.real_scenes as real_scenes


def test_a_photo_is_kept_once_whatever_its_resolution_and_flat_pictures_not_at_all(tmp_path):
    source = tmp_path / "packages"
    source.mkdir()
    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(source / "coffee.png"), coffee)
    cv2.imwrite(str(source / "coffee-small.jpg"), cv2.resize(coffee, None, fx=0.5, fy=0.5))
    cv2.imwrite(str(source / "chelsea.jpg"), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(source / "flat.png"), np.full((300, 400, 3), 90, np.uint8))
    entries = real_scenes.build(tmp_path / "corpus", [source])
    assert sorted(e["source"].rsplit("/", 1)[1] for e in entries) == ["chelsea.jpg", "coffee-small.jpg"]
    again = real_scenes.build(tmp_path / "again", [source])
    assert [(e["hash"], e["split"]) for e in again] == [(e["hash"], e["split"]) for e in entries]
    for e in entries:
        assert (tmp_path / "corpus" / e["file"]).is_file() and e["split"] in ("train", "heldout")
