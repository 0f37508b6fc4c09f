"""Validation mAP of a training run: COCO AP@[.5:.95] and AP50 of a model's detections, computed by the
evaluation engine (``core.coco_ap``) with pycocotools' summary arithmetic, so the values equal COCOeval's.

An image validated against several raters counts once per rater (as the paper's LS validation): each
(rater, image) pair is given as its own image.
"""

from __future__ import annotations

import numpy as np

from multirater.core.boxes import as_boxes
from multirater.core.assignment import PairedDetections, ground_truth_pairs, match_detections
from multirater.core.coco_ap import AP50_INDEX, COCO_IOUS, curves
from multirater.core.ground_truth import GroundTruth


def coco_map(
    ground_truth: list[tuple[np.ndarray, np.ndarray]],
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    category_ids: list[int],
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO mAP and AP50 (``{"map", "ap50"}``) of ``detections[i]`` (xywh boxes, scores, category ids) against
    ``ground_truth[i]`` (xywh boxes, category ids).

    Each image keeps its ``max_dets`` best detections (all categories together, stable order on ties); boxes
    of a category outside ``category_ids`` are ignored, as pycocotools does. No ground truth at all gives 0.
    """
    n_images = min(len(ground_truth), len(detections))  # images are the pairs, as zip gives them
    gt = _ground_truth(ground_truth[:n_images], category_ids)
    dets = _detections(detections[:n_images], gt, max_dets)
    g_key, g_box = ground_truth_pairs(gt)
    flags = match_detections(dets.key, dets.boxes, g_key, g_box, COCO_IOUS, "greedy")
    precision, _ = curves(gt, dets, flags, max_dets)  # (T, K, R)
    # pycocotools' summarize: the mean over (T, R, K), in that order, of every entry > -1
    precision = precision.transpose(0, 2, 1)
    return {"map": _summary(precision), "ap50": _summary(precision[AP50_INDEX : AP50_INDEX + 1])}


def _summary(precision: np.ndarray) -> float:
    """pycocotools' ``np.mean(s[s > -1])``; -1 (no ground truth in any category) counts as nothing learned: 0."""
    defined = precision[precision > -1]
    return max(float(np.mean(defined)), 0.0) if defined.size else 0.0


def _ground_truth(ground_truth: list[tuple[np.ndarray, np.ndarray]], category_ids: list[int]) -> GroundTruth:
    """Image i + 1 of ``ground_truth[i]``; boxes of unknown categories dropped."""
    known = np.unique(np.asarray(category_ids, dtype=np.int64))
    boxes = [as_boxes(b) for b, _ in ground_truth]
    cats = [np.asarray(c, dtype=np.int64).reshape(-1) for _, c in ground_truth]
    image = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(cats)] or [np.zeros(0, int)])
    category = np.concatenate(cats or [np.zeros(0, int)])
    keep = np.isin(category, known)
    n_images = len(ground_truth)
    return GroundTruth(
        image_ids=np.arange(1, n_images + 1, dtype=np.int64),
        widths=np.ones(n_images),
        heights=np.ones(n_images),
        category_ids=known,
        image=image[keep],
        category=np.searchsorted(known, category[keep]),
        boxes=np.concatenate(boxes or [np.zeros((0, 4))])[keep],
    )


def _detections(detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]], gt: GroundTruth,
                max_dets: int) -> PairedDetections:
    """Each image's ``max_dets`` best detections of known categories, in COCO's order within a pair."""
    image, category, score, boxes = [], [], [], []
    for i, (b, s, c) in enumerate(detections):
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        best = np.argsort(-s, kind="stable")[:max_dets]
        c = np.asarray(c, dtype=np.int64).reshape(-1)[best]
        keep = np.isin(c, gt.category_ids)
        image.append(np.full(int(keep.sum()), i, dtype=np.int64))
        category.append(np.searchsorted(gt.category_ids, c[keep]))
        score.append(s[best][keep])
        boxes.append(as_boxes(b)[best][keep] if len(best) else np.zeros((0, 4)))
    if not image:
        return PairedDetections.sort(np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros((0, 4)), 1)
    return PairedDetections.sort(np.concatenate(image), np.concatenate(category), np.concatenate(score),
                                 np.concatenate(boxes), len(gt.category_ids))
