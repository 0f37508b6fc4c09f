"""Validation mAP (COCO AP@[.5:.95], pycocotools) of a model's detections against one or more raters.

An image validated against several raters counts once per rater (as the paper's LS validation): each
(rater, image) pair becomes its own image in the evaluation.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np


def coco_map(
    ground_truth: list[tuple[np.ndarray, np.ndarray]],
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    category_ids: list[int],
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO mAP and AP50 of ``detections[i]`` (xywh boxes, scores, category ids) against
    ``ground_truth[i]`` (xywh boxes, category ids). No ground truth at all gives 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, ((gt_boxes, gt_cats), (boxes, scores, cats)) in enumerate(zip(ground_truth, detections), start=1):
        images.append({"id": i, "width": 1, "height": 1})
        for box, cat in zip(np.asarray(gt_boxes, dtype=float).reshape(-1, 4), gt_cats):
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": int(cat), "bbox": [float(v) for v in box],
                "area": float(box[2] * box[3]), "iscrowd": 0,
            })
        order = np.argsort(-np.asarray(scores), kind="stable")[:max_dets]
        for j in order:
            results.append({"image_id": i, "category_id": int(cats[j]), "bbox": [float(v) for v in boxes[j]],
                            "score": float(scores[j])})
    if not annotations:
        return {"map": 0.0, "ap50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in category_ids]}
        gt.createIndex()
        if not results:
            return {"map": 0.0, "ap50": 0.0}
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # -1 marks "no ground truth in this category"; count it as nothing learned.
    return {"map": max(float(ev.stats[0]), 0.0), "ap50": max(float(ev.stats[1]), 0.0)}
