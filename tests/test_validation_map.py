"""The validation mAP of training (``coco_map``) against pycocotools COCOeval, built from the same per-image
lists, on random scenes with several categories, tied scores and a per-image detection limit."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multirater.training.validation_map import coco_map


def pycocotools_map(ground_truth, detections, category_ids, max_dets):
    """mAP and AP50 from COCOeval at maxDets = [max_dets] (each image's max_dets best detections given),
    summarised as pycocotools does: the mean of every precision entry > -1; 0 when there is none."""
    images, annotations, results = [], [], []
    for i, ((gt_boxes, gt_cats), (boxes, scores, cats)) in enumerate(zip(ground_truth, detections), start=1):
        images.append({"id": i, "width": 1, "height": 1})
        for box, cat in zip(gt_boxes, gt_cats):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(cat),
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0})
        for j in np.argsort(-scores, kind="stable")[:max_dets]:
            results.append({"image_id": i, "category_id": int(cats[j]), "bbox": [float(v) for v in boxes[j]],
                            "score": float(scores[j])})
    if not annotations or not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in category_ids]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, 0]

    def summary(s):
        return max(float(np.mean(s[s > -1])), 0.0) if (s > -1).any() else 0.0

    return summary(precision), summary(precision[:1])


def random_lists(seed):
    rng = np.random.default_rng(seed)
    ground_truth, detections = [], []
    for _ in range(int(rng.integers(1, 8))):
        m = int(rng.integers(0, 8))
        boxes = np.column_stack([rng.uniform(0, 100, (m, 2)), rng.uniform(3, 30, (m, 2))])
        cats = rng.integers(1, 4, m)
        ground_truth.append((boxes, cats))
        k = int(rng.integers(0, 15))
        near = boxes[rng.integers(0, m, k)] if m else rng.uniform(0, 100, (k, 4))
        det = near + rng.normal(0, 2, (k, 4))
        det[:, 2:] = np.abs(det[:, 2:]) + 0.1
        scores = rng.random(k)
        if seed % 2:
            scores = np.round(scores * 4) / 4  # ties
        if seed % 4 == 3:  # as the detector gives them
            det, scores = det.astype(np.float32), scores.astype(np.float32)
        detections.append((det, scores, cats[rng.integers(0, m, k)] if m else rng.integers(1, 4, k)))
    return ground_truth, detections


@pytest.mark.parametrize("max_dets", [100, 5, 2])
@pytest.mark.parametrize("seed", range(8))
def test_coco_map_equals_pycocotools(seed, max_dets):
    ground_truth, detections = random_lists(seed)
    got = coco_map(ground_truth, detections, [1, 2, 3], max_dets)
    ref_map, ref_ap50 = pycocotools_map(ground_truth, detections, [1, 2, 3], max_dets)
    # The same arithmetic as pycocotools: equal to the last bit.
    assert got["map"] == ref_map and got["ap50"] == ref_ap50


def test_coco_map_ignores_unknown_categories_and_counts_images_with_nothing():
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    ground_truth = [(box, np.array([1])), (box, np.array([7])), (np.zeros((0, 4)), np.zeros(0, int))]
    detections = [(box, np.array([0.9]), np.array([1])), (box, np.array([0.8]), np.array([7])),
                  (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    # Category 7 is not evaluated: one object of category 1, found exactly.
    assert coco_map(ground_truth, detections, [1]) == {"map": pytest.approx(1.0), "ap50": pytest.approx(1.0)}
    assert coco_map([], [], [1]) == {"map": 0.0, "ap50": 0.0}
