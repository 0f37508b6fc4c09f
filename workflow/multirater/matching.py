"""One-to-one matching of detections to ground-truth boxes at an IoU threshold.

``greedy`` is COCO's rule (pycocotools): detections in descending score (stable order), each takes the
still-unmatched ground-truth box of highest IoU >= threshold (first such box on ties).
``hungarian`` maximises the total IoU over pairs with IoU >= threshold.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def greedy_match(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Return, for each detection (row of ``iou``), the index of its matched GT column or -1."""
    n_det, n_gt = iou.shape
    matched_gt = np.full(n_det, -1, dtype=np.int64)
    if n_det == 0 or n_gt == 0:
        return matched_gt
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    taken = np.zeros(n_gt, dtype=bool)
    for d in order:
        row = np.where(taken, -1.0, iou[d])
        g = int(np.argmax(row))
        if row[g] >= threshold:
            matched_gt[d] = g
            taken[g] = True
    return matched_gt


def hungarian_match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """Return, for each detection, its matched GT column or -1, maximising total IoU over pairs >= threshold."""
    n_det, n_gt = iou.shape
    matched_gt = np.full(n_det, -1, dtype=np.int64)
    if n_det == 0 or n_gt == 0:
        return matched_gt
    # Pairs below the threshold are worth nothing, so the assignment never prefers them.
    weight = np.where(iou >= threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = weight[rows, cols] >= threshold
    keep &= weight[rows, cols] > 0
    matched_gt[rows[keep]] = cols[keep]
    return matched_gt
