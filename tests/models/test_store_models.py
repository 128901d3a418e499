"""Store models without a cluster: the committed detector's accuracy, letterboxing, face matching."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from models.detection_metrics import average_precision, mean_average_precision
from models.detector import ProductDetector, decode_image, letterbox
from models.faces import FaceGallery, face_encodings
from models.store_render import catalogue_looks, jpeg_bytes, render_scene

DETECTOR = Path(__file__).resolve().parents[2] / "data" / "detector" / "store_detector.onnx"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_average_precision_of_known_cases():
    truths = [[(0, (0, 0, 10, 10))], [(0, (0, 0, 10, 10))]]
    perfect = [[(0, 0.9, (0, 0, 10, 10))], [(0, 0.8, (1, 1, 10, 10))]]
    assert average_precision(perfect, truths, 0) == pytest.approx(1.0)
    half = [[(0, 0.9, (0, 0, 10, 10))], [(0, 0.8, (50, 50, 60, 60))]]
    assert average_precision(half, truths, 0) == pytest.approx(0.5)
    assert average_precision(perfect, truths, 1) is None


def test_letterbox_keeps_aspect_and_pads():
    image = np.full((100, 200, 3), 255, np.uint8)
    out, ratio, (px, py) = letterbox(image, 320)
    assert out.shape == (320, 320, 3) and ratio == pytest.approx(1.6) and (px, py) == (0, 80)
    assert (out[:80] == 114).all() and (out[80:240] == 255).all()


def test_committed_detector_reaches_map50_on_held_out_scenes():
    detector = ProductDetector(DETECTOR, conf=0.05)
    looks = catalogue_looks()
    rng = np.random.default_rng(777)  # training used seeds 0-2
    predictions, truths = [], []
    for _ in range(120):
        image, labels = render_scene(rng, looks, size=int(rng.choice([320, 480, 640])))
        bgr = decode_image(jpeg_bytes(image))
        found = detector.detect([bgr])[0]
        predictions.append([(d.class_id, d.score, d.box) for d in found])
        truths.append(labels)
    assert mean_average_precision(predictions, truths, sorted(looks)) >= 0.9


def test_detector_batches_images_of_different_sizes():
    detector = ProductDetector(DETECTOR)
    rng = np.random.default_rng(5)
    images = [cv2.cvtColor(render_scene(rng, catalogue_looks(), size=s, classes=[0], distractors=0)[0], cv2.COLOR_RGB2BGR)
              for s in (320, 640)]
    single = [detector.detect([img])[0] for img in images]
    batched = detector.detect(images)
    for one, many, img in zip(single, batched, images):
        assert [d.class_id for d in one] == [d.class_id for d in many]
        for a, b in zip(one, many):
            assert np.allclose(a.box, b.box, atol=0.5)
            assert 0 <= a.box[0] < a.box[2] <= img.shape[1] and 0 <= a.box[1] < a.box[3] <= img.shape[0]


def test_decode_image_rejects_non_images():
    assert decode_image(b"not an image") is None
    assert decode_image(jpeg_bytes(data.astronaut())).shape == (512, 512, 3)


def test_face_matches_same_person_in_another_crop_but_not_strangers():
    gallery = FaceGallery()
    gallery.add("astronaut", face_encodings(data.astronaut())[:1])
    crop = cv2.resize(data.astronaut()[10:330, 80:400], (200, 200))
    match = gallery.match(face_encodings(crop)[0], tolerance=0.5)
    assert match is not None and match[0] == "astronaut"
    group = cv2.cvtColor(cv2.imread(str(FIXTURES / "six_people.jpg")), cv2.COLOR_BGR2RGB)
    strangers = face_encodings(group)
    assert len(strangers) == 6
    assert all(gallery.match(e, tolerance=0.5) is None for e in strangers)
