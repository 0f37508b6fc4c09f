"""Assignment of detections to ground-truth boxes: every (image, category) pair at once, padded to a common
size, at many IoU thresholds in one pass.

A pair's detections are in COCO's order (score descending, file order on ties) and its ground-truth boxes in
file order, so ``greedy`` matching is pycocotools' ``evaluateImg`` and its tie rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multirater.core.boxes import iou
from multirater.core.ground_truth import GroundTruth
from multirater.core.matching import greedy_match_sorted, hungarian_match

# Limits the padded arrays (pairs x detections x boxes) to ~32 MB.
CHUNK_ELEMENTS = 4_000_000


@dataclass
class PairedDetections:
    """Detections sorted by (image, category, score descending, file order); positions index the ground truth."""

    image: np.ndarray  # (N,) image position
    category: np.ndarray  # (N,) category position
    score: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) xywh
    key: np.ndarray  # (N,) image * n_categories + category: the pair

    @classmethod
    def sort(cls, image: np.ndarray, category: np.ndarray, score: np.ndarray, boxes: np.ndarray,
             n_categories: int) -> "PairedDetections":
        """Detections given in file order, put in COCO's order within each (image, category) pair."""
        order = np.lexsort((np.arange(len(score)), -score, category, image))
        return cls(image[order], category[order], score[order], boxes[order],
                   image[order] * n_categories + category[order])


def ground_truth_pairs(gt: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """Pair key (sorted) and box of every annotation, file order within a pair."""
    order = np.lexsort((np.arange(len(gt.image)), gt.category, gt.image))
    return (gt.image * len(gt.category_ids) + gt.category)[order], gt.boxes[order]


def segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted ``keys``: unique keys, their start offsets, and each element's position within its key."""
    if len(keys) == 0:
        return keys[:0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[start, len(keys)])
    position = np.arange(len(keys)) - np.repeat(start, counts)
    return keys[start], start, position


def match_detections(
    det_key: np.ndarray,
    det_boxes: np.ndarray,
    gt_key: np.ndarray,
    gt_boxes: np.ndarray,
    thresholds: np.ndarray,
    matching: str = "greedy",
) -> np.ndarray:
    """(T, N) matched flags of every detection at every threshold.

    Detections must be sorted by (pair key, score descending, file order) and ``gt_key`` sorted by pair key
    (file order within a key), the key naming an (image, category) pair. ``matching``: ``greedy`` (COCO's rule)
    or ``hungarian`` (maximum total IoU).
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    flags = np.zeros((len(thresholds), len(det_key)), dtype=bool)
    d_keys, d_start, _ = segments(det_key)
    g_keys, g_start, _ = segments(gt_key)
    d_count = np.diff(np.r_[d_start, len(det_key)])
    g_count = np.diff(np.r_[g_start, len(gt_key)])
    both, di, gi = np.intersect1d(d_keys, g_keys, assume_unique=True, return_indices=True)
    if both.size == 0:
        return flags
    # Pairs in order of detection count, chunked so the padded arrays stay small.
    order = np.argsort(d_count[di], kind="stable")
    di, gi = di[order], gi[order]
    for lo, hi in _chunks(d_count[di], g_count[gi]):
        det_slot = _slots(d_start[di[lo:hi]], d_count[di[lo:hi]])
        gt_slot = _slots(g_start[gi[lo:hi]], g_count[gi[lo:hi]])
        pair_iou = _padded_iou(det_boxes, det_slot, gt_boxes, gt_slot)
        if matching == "greedy":
            matched = greedy_match_sorted(pair_iou, thresholds) >= 0  # (P, T, D)
        else:
            matched = np.zeros((hi - lo, len(thresholds), det_slot.shape[1]), dtype=bool)
            for p in range(hi - lo):
                for t, thr in enumerate(thresholds):
                    matched[p, t] = hungarian_match(pair_iou[p], float(thr)) >= 0
        pi, dj = np.nonzero(det_slot >= 0)
        flags[:, det_slot[pi, dj]] = matched[pi, :, dj].T
    return flags


def _chunks(d_count: np.ndarray, g_count: np.ndarray):
    """(lo, hi) runs of pairs (sorted by detection count) whose padded IoU array stays under CHUNK_ELEMENTS."""
    lo = 0
    while lo < len(d_count):
        hi, g_max = lo + 1, int(g_count[lo])
        while hi < len(d_count):
            g_next = max(g_max, int(g_count[hi]))
            if (hi + 1 - lo) * int(d_count[hi]) * g_next > CHUNK_ELEMENTS:
                break
            g_max, hi = g_next, hi + 1
        yield lo, hi
        lo = hi


def _slots(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(P, max count) positions of each pair's elements, -1 on padding."""
    width = int(count.max())
    slot = start[:, None] + np.arange(width)[None]
    return np.where(np.arange(width)[None] < count[:, None], slot, -1)


def _padded_iou(det_boxes: np.ndarray, det_slot: np.ndarray, gt_boxes: np.ndarray, gt_slot: np.ndarray) -> np.ndarray:
    """(P, D, G) IoU of each pair's detections with its ground-truth boxes, 0 on padding."""
    pair_iou = iou(det_boxes[np.maximum(det_slot, 0)][:, :, None, :], gt_boxes[np.maximum(gt_slot, 0)][:, None, :, :])
    valid = (det_slot >= 0)[:, :, None] & (gt_slot >= 0)[:, None, :]
    return np.where(valid, pair_iou, 0.0)
