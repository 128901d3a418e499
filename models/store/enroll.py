"""Teach the live store detector new products: fine-tune, evaluate beside the live model, gate.

One enrollment: the new products' cut-out photos (models.store.cutout) join the products the live
detector knows; scenes are composed on the real-scene corpus (models.store.train), joined by crops of
training photos the live model mistakes for products (hard negatives), the live model's weights are
fine-tuned, exported to ONNX, and both models are evaluated on the same test pictures
(models.store.eval). A product's photos are split: one in five (at least one) is kept for the test
composites only, so the new class is scored on photos it was not trained on.

The quality gate passes a candidate only if every new class reaches `new_class_map50` on the held-out
composites, no known class loses more than `max_class_drop` mAP50 (rendered or composite), and it does
not see more products in the held-out real frames than the live model (`max_phantom_increase`).
No Ray and no database here: the caller stores the result and decides what becomes live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.store.eval import evaluate
from models.store.real_scenes import pictures
from models.store.render import Product
from models.store.train import (
    WEIGHTS_NAME,
    PhotoPool,
    Progress,
    TrainingPlan,
    export,
    mine_hard_negatives,
    replay_hard_negatives,
    train,
    write_dataset,
)

TEST_PHOTO_EVERY = 5  # one photo in five of a new product is kept for testing
HARD_NEGATIVE_SCORE = 0.25  # of the served threshold: a live model that hardly errs still shows its near-misses


@dataclass(frozen=True)
class GateLimits:
    new_class_map50: float = 0.9
    max_class_drop: float = 0.02
    max_phantom_increase: float = 0.0  # phantoms per 1,000 real frames


@dataclass
class EnrollmentResult:
    onnx: Path
    weights: Path
    candidate: dict  # metrics of the fine-tuned model
    live: dict  # metrics of the live model on the same pictures
    refused: list[str]  # why the gate refused it; empty when it passed
    hard_negatives: list[dict]  # what it was taught is no product: the live model's, and those mined for it


def split_photos(sprites: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training, test) cut-outs of one product: every TEST_PHOTO_EVERY-th photo, at least one, is for testing."""
    if len(sprites) < 2:
        raise ValueError("a product needs at least 2 photos (one is kept for testing)")
    test = [s for i, s in enumerate(sprites) if i % TEST_PHOTO_EVERY == TEST_PHOTO_EVERY - 1] or [sprites[-1]]
    return [s for s in sprites if not any(s is t for t in test)], test


def gate(candidate: dict, live: dict, new_classes: Sequence[str], limits: GateLimits) -> list[str]:
    """The reasons to refuse `candidate` against `live` (metrics from models.store.eval); empty: it passes."""
    reasons = []
    for sku in new_classes:
        ap = candidate["composite_map50_per_class"].get(sku, 0.0)
        if ap < limits.new_class_map50:
            reasons.append(f"{sku}: mAP50 {ap:.3f} on held-out composites, below {limits.new_class_map50}")
    for split in ("rendered", "composite"):
        for sku, before in live[f"{split}_map50_per_class"].items():
            after = candidate[f"{split}_map50_per_class"].get(sku, 0.0)
            if sku not in new_classes and after < before - limits.max_class_drop:
                reasons.append(f"{sku}: {split} mAP50 fell from {before:.3f} to {after:.3f}")
    if candidate["phantoms_per_1000"] > live["phantoms_per_1000"] + limits.max_phantom_increase:
        reasons.append(f"phantoms on held-out real frames rose from {live['phantoms_per_1000']} to "
                       f"{candidate['phantoms_per_1000']} per 1,000")
    return reasons


def enroll(known: Mapping[int, Product], new: Mapping[int, Sequence[np.ndarray]], names: Mapping[int, str],
           base_weights: Path, live_onnx: Path, corpus: Path, work: Path, plan: TrainingPlan, limits: GateLimits,
           conf: float, progress: Progress, kept: Sequence[Mapping] = ()) -> EnrollmentResult:
    """Fine-tune `base_weights` so it also knows the `new` products (class id -> cut-outs), then gate it.
    `kept`: the live model's hard negatives (models.store.train.kept_hard_negatives); `plan.replay` of
    them are trained on again."""
    split = {c: split_photos(sprites) for c, sprites in new.items()}
    train_products = {**known, **{c: s[0] for c, s in split.items()}}
    test_products = {**known, **{c: s[1] for c, s in split.items()}}
    progress(0.0, "composing scenes")
    data_yaml = write_dataset(work / "dataset", train_products, names, corpus, plan, test_products=test_products)
    replay_hard_negatives(work / "dataset", corpus, kept, plan.imgsz, plan.replay)
    mined = []
    if plan.hard_negatives:  # what the live model mistakes for products - or nearly does - stays background
        mined = mine_hard_negatives(work / "dataset", live_onnx, PhotoPool(pictures(corpus, "train")),
                                    plan.hard_negatives, plan.imgsz, conf * HARD_NEGATIVE_SCORE, seed=4)
    best = train(data_yaml, str(base_weights), plan, work, lambda done, what: progress(0.1 + 0.75 * done, what))
    progress(0.85, "exporting")
    onnx = export(best, plan.imgsz, names, work / "candidate")
    progress(0.88, "evaluating")
    candidate = evaluate(onnx, work / "dataset", corpus, names, conf)
    live = evaluate(live_onnx, work / "dataset", corpus, names, conf)
    refused = gate(candidate, live, [names[c] for c in new], limits)
    progress(1.0, "refused" if refused else "passed")
    return EnrollmentResult(onnx, work / "candidate" / WEIGHTS_NAME, candidate, live, refused, [*kept, *mined])
