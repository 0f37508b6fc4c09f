"""One-to-one matching of detections to ground-truth boxes at an IoU threshold.

``greedy`` is COCO's rule, exactly as pycocotools' ``evaluateImg``: detections in descending score (stable
order), each takes the still-unmatched ground-truth box of highest IoU >= min(threshold, 1 - 1e-10); among
equal IoUs the LAST ground-truth box wins (pycocotools replaces its pick on equality).
``hungarian`` maximises the total IoU over pairs with IoU >= threshold.
"""

from __future__ import annotations

import numpy as np

# pycocotools caps the threshold so that an IoU of exactly 1 still matches at threshold 1.
_COCO_CAP = 1 - 1e-10


def greedy_match(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Return, for each detection (row of ``iou``), the index of its matched GT column or -1."""
    iou = np.asarray(iou, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    matched = greedy_match_sorted(iou[order][None], np.array([threshold]))[0, 0]
    out = np.full(iou.shape[0], -1, dtype=np.int64)
    out[order] = matched
    return out


def greedy_match_sorted(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """COCO greedy matching of many (image, category) pairs at many thresholds in lockstep.

    ``iou`` (P, D, G): detections of each pair already in descending score order; padded rows and columns
    hold 0 (a padded column can never match since every threshold is > 0). Returns (P, T, D) matched GT
    column or -1.
    """
    n_pairs, n_dets, n_gt = iou.shape
    thr = np.minimum(np.asarray(thresholds, dtype=np.float64), _COCO_CAP)
    matched = np.full((n_pairs, len(thr), n_dets), -1, dtype=np.int64)
    if n_dets == 0 or n_gt == 0 or n_pairs == 0:
        return matched
    taken = np.zeros((n_pairs, len(thr), n_gt), dtype=bool)
    reach = iou.max(axis=2)  # a detection below every threshold can match nothing
    for d in range(n_dets):
        live = np.flatnonzero(reach[:, d] >= thr.min())
        if live.size == 0:
            continue
        row = iou[live, d][:, None, :]  # (L, 1, G)
        value = np.where(taken[live] | (row < thr[None, :, None]), -1.0, row)
        last = n_gt - 1 - value[:, :, ::-1].argmax(axis=2)  # last maximum, as pycocotools
        hit = np.take_along_axis(value, last[:, :, None], axis=2)[:, :, 0] >= 0
        li, ti = np.nonzero(hit)
        gi = last[li, ti]
        matched[live[li], ti, d] = gi
        taken[live[li], ti, gi] = True
    return matched


def hungarian_match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """Return, for each detection, its matched GT column or -1, maximising total IoU over pairs >= threshold."""
    # imported here: scipy.optimize costs ~0.4 s at import, and every training and evaluation job matches greedily
    from scipy.optimize import linear_sum_assignment

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
