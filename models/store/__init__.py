"""The smart store's model code.

    detector      `ProductDetector`: YOLO ONNX pre/post-processing, image decoding
    faces         face locations, encodings and the gallery of known shoppers
    render        product sprites and synthetic training scenes
    real_scenes   the corpus of real photos and videos without products (training negatives, held-out stream)
    cutout        a product cut out of a photo (GrabCut)
    train         `python -m models.store.train`: train and export the detector
    eval, metrics    evaluation (mAP, phantom detections)
    enroll        teaching a new product and the quality gate it must pass
"""

from models.store.detector import Detection, ProductDetector, decode_image

__all__ = ["Detection", "ProductDetector", "decode_image"]
