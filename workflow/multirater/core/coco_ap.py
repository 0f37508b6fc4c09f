"""COCO AP and AR, exactly as pycocotools' COCOeval (bbox, area "all", one maxDets), on the test images and on
bootstrap resamples of them.

For one category, detections are concatenated by ascending image id (each image's by score) and stably sorted
by score; precision at the k-th detection is tp_k / (tp_k + fp_k + eps), made monotone from the right, and
read at the 101 recall points 0, 0.01, ..., 1 (0 where the recall is never reached). AP is the mean of those
101 values, AR the final recall; both are -1 where the category has no ground-truth box.

A resample reweights each image by how often it was drawn, which gives exactly what COCOeval gives on the
resample with every repeat as its own image id.
"""

from __future__ import annotations

import numpy as np

from multirater.core.assignment import CHUNK_ELEMENTS, PairedDetections, segments
from multirater.core.ground_truth import GroundTruth

# pycocotools' grids, built with the same expressions so that every threshold is bit-identical.
COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_GRID = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AP50_INDEX, AP75_INDEX = 0, 5


def coco_curves(flags: np.ndarray, weights: np.ndarray, npig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' accumulate for one category.

    ``flags`` (T, n): matched flag of each detection in COCO's order; ``weights`` (B, n): how many times each
    detection counts (its image's multiplicity); ``npig`` (B,): ground-truth boxes. Returns the interpolated
    precision (B, T, R) at the R = 101 recall points and the recall (B, T); both -1 where ``npig`` is 0.
    """
    n_t, n = flags.shape
    n_b = weights.shape[0]
    precision = np.full((n_b, n_t, len(RECALL_GRID)), -1.0)
    recall = np.full((n_b, n_t), -1.0)
    if n == 0:
        precision[npig > 0] = 0.0
        recall[npig > 0] = 0.0
        return precision, recall
    targets = _recall_targets(npig)
    step = max(1, CHUNK_ELEMENTS // (n_t * n))
    for lo in range(0, n_b, step):
        w = weights[lo : lo + step]
        b = len(w)
        tp = np.cumsum(w[:, None, :] * flags[None], axis=2)  # (b, T, n)
        # tp + fp is the running count of detections: integers, so exactly pycocotools' fp + tp
        pr = tp / (np.cumsum(w, axis=1)[:, None, :] + np.spacing(1))
        # interpolated precision, kept in reversed order: best_rev[..., n - 1 - k] = max(pr[..., k:])
        best_rev = np.maximum.accumulate(pr[:, :, ::-1], axis=2).reshape(b * n_t, n)
        need = np.repeat(targets[lo : lo + b], n_t, axis=0)
        first = _first_reaching(tp.reshape(b * n_t, n), need)
        q = np.take_along_axis(best_rev, np.maximum(n - 1 - first, 0), axis=1)
        q[first >= n] = 0.0  # recall never reached: precision 0, as pycocotools
        precision[lo : lo + b] = q.reshape(b, n_t, -1)
        recall[lo : lo + b] = tp[:, :, -1] / np.maximum(npig[lo : lo + b], 1.0)[:, None]
    precision[npig <= 0] = -1.0
    recall[npig <= 0] = -1.0
    return precision, recall


def average_precision(precision: np.ndarray) -> np.ndarray:
    """AP: the mean of the interpolated precision over the recall points (last axis); -1 stays -1."""
    return precision.mean(axis=-1)


def mean_valid(values: np.ndarray) -> np.ndarray:
    """Mean over all but the first axis of entries > -1 (pycocotools' summarize); NaN where there is none
    (pycocotools prints -1: no ground-truth box in any category)."""
    flat = values.reshape(values.shape[0], -1)
    valid = flat > -1
    count = valid.sum(axis=1)
    total = np.where(valid, flat, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def curves(gt: GroundTruth, dets: PairedDetections, flags: np.ndarray, max_dets: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision (T, K, R) and recall (T, K) per category on the test images, at the COCO
    thresholds that ``flags`` (T, N) were matched at; -1 for a category without ground truth."""
    n_t, n_cat = flags.shape[0], len(gt.category_ids)
    precision, recall = np.full((n_t, n_cat, len(RECALL_GRID)), -1.0), np.full((n_t, n_cat), -1.0)
    ones = np.ones((1, len(gt.image_ids)))
    for k, sel, _, gt_per_image in _by_category(gt, dets, max_dets):
        p, r = coco_curves(flags[:, sel], ones[:, dets.image[sel]], ones @ gt_per_image)
        precision[:, k], recall[:, k] = p[0], r[0]
    return precision, recall


def resampled_ap_ar(
    gt: GroundTruth,
    dets: PairedDetections,
    flags: np.ndarray,
    max_dets: int,
    indices: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """AP and AR (B, T, K) per category on each bootstrap resample: ``indices`` (B, I) are the drawn image
    positions, ``counts`` (B, I) how often each image was drawn."""
    n_boot, n_t, n_cat = counts.shape[0], flags.shape[0], len(gt.category_ids)
    ap, ar = np.full((n_boot, n_t, n_cat), -1.0), np.full((n_boot, n_t, n_cat), -1.0)
    for k, sel, within, gt_per_image in _by_category(gt, dets, max_dets):
        flags_k = flags[:, sel]
        npig = counts @ gt_per_image
        if len(np.unique(dets.score[sel])) == len(sel):
            # Distinct scores: a detection's repeats are adjacent in the resample's order, so weights are exact.
            p, ar[:, :, k] = coco_curves(flags_k, counts[:, dets.image[sel]], npig)
            ap[:, :, k] = average_precision(p)
        else:
            for b in range(n_boot):
                p, r = _tied_resample(sel, dets, within, flags_k, indices[b], npig[b : b + 1])
                ap[b, :, k], ar[b, :, k] = average_precision(p)[0], r[0]
    return ap, ar


def _by_category(gt: GroundTruth, dets: PairedDetections, max_dets: int):
    """Per category k: k, its kept detections in pycocotools' order, each detection's rank within its pair,
    and the category's ground-truth boxes per image (I,)."""
    _, _, within = segments(dets.key)
    kept = within < max_dets  # pycocotools keeps the max_dets best detections per image and category
    gt_per_image = np.zeros((len(gt.image_ids), len(gt.category_ids)))
    np.add.at(gt_per_image, (gt.image, gt.category), 1.0)
    for k in range(len(gt.category_ids)):
        sel = np.flatnonzero(kept & (dets.category == k))
        # pycocotools: images in ascending id, each pair's detections by score, then a stable sort by score.
        sel = sel[np.lexsort((within[sel], dets.image[sel], -dets.score[sel]))]
        yield k, sel, within, gt_per_image[:, k]


def _tied_resample(sel, dets, within, flags_k, positions, npig) -> tuple[np.ndarray, np.ndarray]:
    """One resample built explicitly (each drawn image a new id, in draw order), for categories with tied
    scores, where the order among tied detections of different draws matters to pycocotools."""
    by_image = sel[np.lexsort((within[sel], dets.image[sel]))]
    column = np.empty(len(dets.image), dtype=np.int64)
    column[sel] = np.arange(len(sel))
    img_sorted = dets.image[by_image]
    start = np.searchsorted(img_sorted, positions, side="left")
    stop = np.searchsorted(img_sorted, positions, side="right")
    n = stop - start
    expanded = by_image[np.repeat(start - np.cumsum(n) + n, n) + np.arange(n.sum())]
    expanded = expanded[np.argsort(-dets.score[expanded], kind="stable")]
    return coco_curves(flags_k[:, column[expanded]], np.ones((1, len(expanded))), npig)


def _first_reaching(tp: np.ndarray, need: np.ndarray) -> np.ndarray:
    """For rows of nondecreasing integer-valued ``tp`` (M, n) and targets ``need`` (M, R): first index with
    tp >= need (n if none), with one exact searchsorted over offset rows."""
    m, n = tp.shape
    span = float(max(tp[:, -1].max(), need.max()) + 2) if n else 1.0
    offset = span * np.arange(m, dtype=np.float64)
    flat = (tp + offset[:, None]).ravel()  # integers below 2**53: exact
    pos = np.searchsorted(flat, (need + offset[:, None]).ravel(), side="left").reshape(m, -1)
    return np.minimum(pos - (n * np.arange(m))[:, None], n)


def _recall_targets(npig: np.ndarray) -> np.ndarray:
    """(B, R): the least true-positive count v with v / npig >= each recall threshold, in float arithmetic
    (so that ``tp >= v`` is exactly pycocotools' ``tp / npig >= threshold``)."""
    npig = np.maximum(npig, 1.0)[:, None]
    v = np.ceil(RECALL_GRID[None] * npig)
    v = np.where((v - 1 >= 0) & ((v - 1) / npig >= RECALL_GRID[None]), v - 1, v)
    v = np.where(v / npig < RECALL_GRID[None], v + 1, v)
    return v
