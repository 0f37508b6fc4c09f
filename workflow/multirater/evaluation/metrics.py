"""Evaluation of a detections file against ground truth: COCO mAP/AP50/AP75/mAR, D-ECE, reliability data,
each on the test images and on bootstrap resamples of them.

- mAP, AP50, AP75 and mAR equal pycocotools COCOeval (bbox, area "all", maxDets = ``max_dets``), including
  its tie order (concatenation by ascending image id, stable sort by score) and its greedy matching.
- D-ECE (Campi et al. Eq. 1; Kueppers et al.) over all detections of the test images, matched with
  ``matching`` (``greedy`` = COCO's rule, ``hungarian`` = maximum total IoU) at each IoU threshold:
  equal-width bins with edges ``linspace(0, 1, bins + 1)``, bins [a, b) with the last one closed, empty bins
  skipped, D-ECE = sum_b n_b / N * |precision_b - confidence_b| (netcal's ``ECE(detection=True)``). With
  ``dece_features`` the bins are joint over the confidence and the box's relative centre/size.
- Bootstrap: matching is done once per image; a resample only reweights images by how often they were drawn,
  which gives exactly what COCOeval gives on the resample with every repeat as its own image id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from multirater.evaluation.bootstrap import resample_counts, resample_indices, summarize
from multirater.io.detections import Detections
from multirater.core.errors import UserError
from multirater.core.matching import greedy_match_sorted, hungarian_match

# pycocotools' grids, built with the same expressions so that every threshold is bit-identical.
COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_GRID = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AP50_INDEX, AP75_INDEX = 0, 5
MATCHINGS = ("greedy", "hungarian")
DECE_FEATURES = ("cx", "cy", "w", "h")
# Limits the padded arrays (pairs x detections x boxes, resamples x thresholds x detections) to ~32 MB.
_CHUNK_ELEMENTS = 4_000_000


@dataclass
class GroundTruth:
    image_ids: np.ndarray  # (I,) ascending: the evaluated images
    widths: np.ndarray  # (I,) float64, nan where unknown
    heights: np.ndarray
    category_ids: np.ndarray  # (K,) ascending
    image: np.ndarray  # (A,) image position of each annotation
    category: np.ndarray  # (A,) category position
    boxes: np.ndarray  # (A, 4) xywh


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_ground_truth(coco: Any, name: str = "<ground truth>") -> GroundTruth:
    """Validate a COCO ground-truth dict; every problem names the file and the item."""
    if not isinstance(coco, dict):
        raise UserError("expected a COCO object with 'images', 'annotations' and 'categories'", name)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"missing list '{key}'", name)
    sizes: dict[int, tuple[float, float]] = {}
    for i, im in enumerate(coco["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise UserError("needs an integer 'id'", name, f"images[{i}]")
        if im["id"] in sizes:
            raise UserError(f"duplicate image id {im['id']}", name, f"images[{i}]")
        w, h = im.get("width"), im.get("height")
        sizes[im["id"]] = (float(w), float(h)) if _is_number(w) and _is_number(h) else (math.nan, math.nan)
    cats = set()
    for i, cat in enumerate(coco["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise UserError("needs an integer 'id'", name, f"categories[{i}]")
        cats.add(cat["id"])
    image_ids = np.array(sorted(sizes), dtype=np.int64)
    category_ids = np.array(sorted(cats), dtype=np.int64)
    anns = coco["annotations"]
    img = np.zeros(len(anns), dtype=np.int64)
    cat = np.zeros(len(anns), dtype=np.int64)
    boxes = np.zeros((len(anns), 4))
    for i, ann in enumerate(anns):
        item = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise UserError("must be an object", name, item)
        if ann.get("image_id") not in sizes or not _is_int(ann.get("image_id")):
            raise UserError(f"image_id {ann.get('image_id')!r} is not in 'images'", name, item)
        if ann.get("category_id") not in cats or not _is_int(ann.get("category_id")):
            raise UserError(f"category_id {ann.get('category_id')!r} is not in 'categories'", name, item)
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise UserError(f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}", name, item)
        if bbox[2] < 0 or bbox[3] < 0:
            raise UserError(f"bbox has negative width or height: {bbox!r}", name, item)
        if ann.get("iscrowd"):
            raise UserError("crowd annotations (iscrowd) are not supported", name, item)
        img[i], cat[i], boxes[i] = ann["image_id"], ann["category_id"], bbox
    wh = np.array([sizes[i] for i in image_ids.tolist()]).reshape(-1, 2)
    return GroundTruth(
        image_ids=image_ids,
        widths=wh[:, 0],
        heights=wh[:, 1],
        category_ids=category_ids,
        image=np.searchsorted(image_ids, img),
        category=np.searchsorted(category_ids, cat),
        boxes=boxes,
    )


# ----------------------------------------------------------------------------------------------- matching


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted ``keys``: unique keys, their start offsets, and each element's position within its key."""
    if len(keys) == 0:
        return keys[:0], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[start, len(keys)])
    position = np.arange(len(keys)) - np.repeat(start, counts)
    return keys[start], start, position


def _padded_iou(det_boxes: np.ndarray, det_slot: np.ndarray, gt_boxes: np.ndarray, gt_slot: np.ndarray) -> np.ndarray:
    """(P, D, G) IoU of each pair's detections with its GT boxes (pycocotools arithmetic), 0 on padding."""
    d = det_boxes[np.maximum(det_slot, 0)][:, :, None, :]  # (P, D, 1, 4)
    g = gt_boxes[np.maximum(gt_slot, 0)][:, None, :, :]  # (P, 1, G, 4)
    iw = np.minimum(d[..., 0] + d[..., 2], g[..., 0] + g[..., 2]) - np.maximum(d[..., 0], g[..., 0])
    ih = np.minimum(d[..., 1] + d[..., 3], g[..., 1] + g[..., 3]) - np.maximum(d[..., 1], g[..., 1])
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    valid = (det_slot >= 0)[:, :, None] & (gt_slot >= 0)[:, None, :]
    return np.where(valid, iou, 0.0)


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
    (file order within a key), the key naming an (image, category) pair.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    flags = np.zeros((len(thresholds), len(det_key)), dtype=bool)
    d_keys, d_start, _ = _segments(det_key)
    g_keys, g_start, _ = _segments(gt_key)
    d_count = np.diff(np.r_[d_start, len(det_key)])
    g_count = np.diff(np.r_[g_start, len(gt_key)])
    both, di, gi = np.intersect1d(d_keys, g_keys, assume_unique=True, return_indices=True)
    if both.size == 0:
        return flags
    # Pairs in order of detection count, chunked so the padded arrays stay small.
    order = np.argsort(d_count[di], kind="stable")
    di, gi = di[order], gi[order]
    lo = 0
    while lo < len(di):
        hi, g_max = lo + 1, int(g_count[gi[lo]])
        while hi < len(di):
            g_next = max(g_max, int(g_count[gi[hi]]))
            if (hi + 1 - lo) * int(d_count[di[hi]]) * g_next > _CHUNK_ELEMENTS:
                break
            g_max, hi = g_next, hi + 1
        cd, cg = di[lo:hi], gi[lo:hi]
        d_max, g_max = int(d_count[cd].max()), int(g_count[cg].max())
        det_slot = d_start[cd][:, None] + np.arange(d_max)[None]
        det_slot = np.where(np.arange(d_max)[None] < d_count[cd][:, None], det_slot, -1)
        gt_slot = g_start[cg][:, None] + np.arange(g_max)[None]
        gt_slot = np.where(np.arange(g_max)[None] < g_count[cg][:, None], gt_slot, -1)
        iou = _padded_iou(det_boxes, det_slot, gt_boxes, gt_slot)
        if matching == "greedy":
            matched = greedy_match_sorted(iou, thresholds) >= 0  # (P, T, D)
        else:
            matched = np.zeros((len(cd), len(thresholds), d_max), dtype=bool)
            for p in range(len(cd)):
                for t, thr in enumerate(thresholds):
                    matched[p, t] = hungarian_match(iou[p], float(thr)) >= 0
        valid = det_slot >= 0
        pi, dj = np.nonzero(valid)
        flags[:, det_slot[pi, dj]] = matched[pi, :, dj].T
        lo = hi
    return flags


# ---------------------------------------------------------------------------------------- COCO AP / AR


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


def coco_curves(flags: np.ndarray, weights: np.ndarray, npig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' accumulate for one category.

    ``flags`` (T, n): matched flag of each detection in COCO's order; ``weights`` (B, n): how many times each
    detection counts (its image's multiplicity); ``npig`` (B,): GT boxes. Returns AP (B, T) = mean
    interpolated precision over the 101 recall points, and recall (B, T); both -1 where ``npig`` is 0.
    """
    n_t, n = flags.shape
    n_b = weights.shape[0]
    ap = np.full((n_b, n_t), -1.0)
    recall = np.full((n_b, n_t), -1.0)
    if n == 0:
        ap[npig > 0] = 0.0
        recall[npig > 0] = 0.0
        return ap, recall
    targets = _recall_targets(npig)
    step = max(1, _CHUNK_ELEMENTS // (n_t * n))
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
        ap[lo : lo + b] = q.mean(axis=1).reshape(b, n_t)
        recall[lo : lo + b] = tp[:, :, -1] / np.maximum(npig[lo : lo + b], 1.0)[:, None]
    ap[npig <= 0] = -1.0
    recall[npig <= 0] = -1.0
    return ap, recall


def _mean_valid(values: np.ndarray) -> np.ndarray:
    """Mean over the last axes of entries > -1 (pycocotools' summarize); NaN where there is none
    (pycocotools prints -1: no ground-truth box in any category)."""
    flat = values.reshape(values.shape[0], -1)
    valid = flat > -1
    count = valid.sum(axis=1)
    total = np.where(valid, flat, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# -------------------------------------------------------------------------------------------- D-ECE


def bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each value in [0, 1]: edges linspace(0, 1, bins + 1), bins [a, b), the last bin closed."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


def dece_bins(confidence: np.ndarray, bins: int, features: np.ndarray | None = None) -> np.ndarray:
    """Bin of each detection: by confidence, or jointly by confidence and each feature column in [0, 1]."""
    index = bin_index(np.asarray(confidence, dtype=np.float64), bins)
    if features is None or np.size(features) == 0:
        return index
    cols = [bin_index(np.clip(f, 0.0, 1.0), bins) for f in np.asarray(features, dtype=np.float64).T]
    return np.ravel_multi_index([index, *cols], (bins,) * (1 + len(cols)))


def dece(confidence: np.ndarray, matched: np.ndarray, bins: int = 10, features: np.ndarray | None = None) -> float:
    """D-ECE of detections with the given confidences and matched flags (NaN if there are none)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    index = dece_bins(confidence, bins, features)
    n = len(index)
    if n == 0:
        return float("nan")
    gap = np.bincount(index, weights=np.asarray(matched, dtype=np.float64) - confidence)
    return float(np.abs(gap).sum() / n)


def reliability(confidence: np.ndarray, matched: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per confidence bin: edges, count, mean confidence and precision (None for an empty bin)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = bin_index(np.asarray(confidence, dtype=np.float64), bins)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=np.asarray(matched, dtype=np.float64), minlength=bins)
    return [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(count[b]),
            "confidence": float(conf[b] / count[b]) if count[b] else None,
            "precision": float(hits[b] / count[b]) if count[b] else None,
        }
        for b in range(bins)
    ]


def _box_features(names: tuple[str, ...], boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Relative centre and size of boxes, columns in the order asked, clipped to [0, 1]."""
    if not names:
        return np.zeros((len(boxes), 0))
    values = {
        "cx": (boxes[:, 0] + boxes[:, 2] / 2) / width,
        "cy": (boxes[:, 1] + boxes[:, 3] / 2) / height,
        "w": boxes[:, 2] / width,
        "h": boxes[:, 3] / height,
    }
    return np.clip(np.column_stack([values[n] for n in names]), 0.0, 1.0)


def _dece_resamples(bin_id: np.ndarray, image: np.ndarray, gap: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """D-ECE on every resample: per image and bin sums of (matched - confidence), reweighted by counts (B, I)."""
    from scipy.sparse import csr_matrix

    if len(gap) == 0:
        return np.full(counts.shape[0], np.nan)
    uniq, occupied = np.unique(bin_id, return_inverse=True)
    n_images = counts.shape[1]
    per_image = csr_matrix((gap, (image, occupied)), shape=(n_images, len(uniq)))
    n_per_image = np.bincount(image, minlength=n_images).astype(np.float64)
    totals = np.asarray((per_image.T @ counts.T).T)  # (B, bins)
    n = counts @ n_per_image
    return np.where(n > 0, np.abs(totals).sum(axis=1) / np.maximum(n, 1.0), np.nan)


# ----------------------------------------------------------------------------------------- evaluation


def _check_settings(iou_thresholds, bins, matching, max_dets, bootstrap, dece_features) -> None:
    if not iou_thresholds or not all(0.0 < float(t) <= 1.0 for t in iou_thresholds):
        raise UserError(f"--iou thresholds must lie in (0, 1], got {list(iou_thresholds)}")
    if int(bins) < 1:
        raise UserError(f"--bins must be at least 1, got {bins}")
    if matching not in MATCHINGS:
        raise UserError(f"--matching must be one of {', '.join(MATCHINGS)}, got {matching!r}")
    if int(max_dets) < 1:
        raise UserError(f"--max-dets must be at least 1, got {max_dets}")
    if int(bootstrap) < 0:
        raise UserError(f"--bootstrap must be 0 or more, got {bootstrap}")
    for f in dece_features:
        if f not in DECE_FEATURES:
            raise UserError(f"--dece-features takes {' '.join(DECE_FEATURES)}, got {f!r}")


def _positions(known: np.ndarray, ids: np.ndarray, key: str, what: str, pred_label: str) -> np.ndarray:
    """Position of each id in the sorted ``known`` ids; an unknown id is an error naming the detection."""
    pos = np.searchsorted(known, ids)
    if len(known):
        unknown = (pos >= len(known)) | (known[np.minimum(pos, len(known) - 1)] != ids)
    else:
        unknown = np.ones(len(ids), dtype=bool)
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        raise UserError(f"{key} {int(ids[k])} is not {what}", pred_label, f"detection {k}")
    return pos


def _ap_ar(gt, d_img, d_cat, d_score, d_key, coco_flags, max_dets, counts, indices):
    """Per-category AP and AR (10 COCO thresholds) on the test set (1, T, K) and on each resample (B, T, K)."""
    n_img, n_cat = len(gt.image_ids), len(gt.category_ids)
    n_boot = 0 if counts is None else counts.shape[0]
    _, _, within = _segments(d_key)
    kept = within < max_dets  # pycocotools keeps the max_dets best detections per image and category
    gt_per_image = np.zeros((n_img, n_cat))
    np.add.at(gt_per_image, (gt.image, gt.category), 1.0)
    ones = np.ones((1, n_img))
    n_t = len(COCO_IOUS)
    ap_value, ar_value = np.full((1, n_t, n_cat), -1.0), np.full((1, n_t, n_cat), -1.0)
    ap_boot, ar_boot = np.full((n_boot, n_t, n_cat), -1.0), np.full((n_boot, n_t, n_cat), -1.0)
    for k in range(n_cat):
        sel = np.flatnonzero(kept & (d_cat == k))
        # pycocotools: images in ascending id, each pair's detections by score, then a stable sort by score.
        sel = sel[np.lexsort((within[sel], d_img[sel], -d_score[sel]))]
        flags_k = coco_flags[:, sel]
        img_k = d_img[sel]
        ap_value[:, :, k], ar_value[:, :, k] = coco_curves(flags_k, ones[:, img_k], ones @ gt_per_image[:, k])
        if not n_boot:
            continue
        npig = counts @ gt_per_image[:, k]
        if len(np.unique(d_score[sel])) == len(sel):
            # Distinct scores: a detection's repeats are adjacent in the resample's order, so weights are exact.
            ap_boot[:, :, k], ar_boot[:, :, k] = coco_curves(flags_k, counts[:, img_k], npig)
        else:
            for b in range(n_boot):
                ap, ar = _tied_resample(sel, d_img, within, d_score, flags_k, indices[b], npig[b : b + 1])
                ap_boot[b, :, k], ar_boot[b, :, k] = ap[0], ar[0]
    return ap_value, ar_value, ap_boot, ar_boot


def evaluate(
    gt_coco: dict,
    detections: Detections,
    iou_thresholds=(0.5, 0.75),
    bins: int = 10,
    matching: str = "greedy",
    max_dets: int = 100,
    bootstrap: int = 100,
    seed: int = 0,
    dece_features=(),
    gt_name: str | None = None,
    pred_name: str | None = None,
) -> dict[str, Any]:
    """The metrics-file dict (docs/file-contracts.md) of ``detections`` against the COCO dict ``gt_coco``.

    The evaluated images are the ground truth's (ascending id); a ground-truth image without detections
    counts as an image with none; a detection on an image outside the ground truth is an error.
    """
    dece_features = tuple(dece_features)
    _check_settings(iou_thresholds, bins, matching, max_dets, bootstrap, dece_features)
    gt_label = gt_name or "<ground truth>"
    pred_label = pred_name or "<detections>"
    gt = parse_ground_truth(gt_coco, gt_label)
    n_img, n_cat = len(gt.image_ids), len(gt.category_ids)

    det_img = _positions(gt.image_ids, detections.image_id, "image_id", f"an image of the ground truth {gt_label}",
                         pred_label)
    det_cat = _positions(gt.category_ids, detections.category_id, "category_id",
                         f"a category of the ground truth {gt_label}", pred_label)
    if dece_features and not (np.isfinite(gt.widths).all() and np.isfinite(gt.heights).all()):
        raise UserError("--dece-features needs 'width' and 'height' of every image", gt_label)

    # COCO order within each (image, category) pair: score descending, file order on ties.
    scores = detections.scores
    order = np.lexsort((np.arange(len(scores)), -scores, det_cat, det_img))
    d_img, d_cat, d_score, d_box = det_img[order], det_cat[order], scores[order], detections.boxes[order]
    d_key = d_img * n_cat + d_cat
    g_order = np.lexsort((np.arange(len(gt.image)), gt.category, gt.image))
    g_key = (gt.image * n_cat + gt.category)[g_order]
    g_box = gt.boxes[g_order]

    dece_ious = np.array([float(t) for t in iou_thresholds])
    if matching == "greedy":  # one pass for COCO's thresholds and the D-ECE ones
        flags = match_detections(d_key, d_box, g_key, g_box, np.r_[COCO_IOUS, dece_ious], "greedy")
        coco_flags, dece_flags = flags[: len(COCO_IOUS)], flags[len(COCO_IOUS) :]
    else:
        coco_flags = match_detections(d_key, d_box, g_key, g_box, COCO_IOUS, "greedy")
        dece_flags = match_detections(d_key, d_box, g_key, g_box, dece_ious, matching)

    counts = indices = None
    if bootstrap:
        indices = resample_indices(n_img, int(bootstrap), int(seed))
        counts = resample_counts(indices, n_img)
    ap_value, ar_value, ap_boot, ar_boot = _ap_ar(
        gt, d_img, d_cat, d_score, d_key, coco_flags, int(max_dets), counts, indices
    )

    records = []
    for name, values, boot in (
        ("mAP", ap_value, ap_boot),
        ("AP50", ap_value[:, AP50_INDEX : AP50_INDEX + 1], ap_boot[:, AP50_INDEX : AP50_INDEX + 1]),
        ("AP75", ap_value[:, AP75_INDEX : AP75_INDEX + 1], ap_boot[:, AP75_INDEX : AP75_INDEX + 1]),
        ("mAR", ar_value, ar_boot),
    ):
        rec = {"metric": name, "iou": None}
        rec.update(summarize(_mean_valid(values)[0], _mean_valid(boot) if bootstrap else None))
        records.append(rec)

    features = _box_features(dece_features, d_box, gt.widths[d_img], gt.heights[d_img]) if dece_features else None
    bin_id = dece_bins(d_score, bins, features)
    reliability_data = {}
    for thr, matched in zip(dece_ious, dece_flags):
        gap = matched - d_score  # per detection: hit minus confidence; a bin's D-ECE term is |sum of gaps| / N
        rec = {"metric": "D-ECE", "iou": float(thr)}
        rec.update(summarize(dece(d_score, matched, bins, features),
                             _dece_resamples(bin_id, d_img, gap, counts) if bootstrap else None))
        records.append(rec)
        reliability_data[f"{float(thr):g}"] = reliability(d_score, matched, bins)

    return {
        "settings": {
            "gt": gt_name,
            "pred": pred_name,
            "iou_thresholds": [float(t) for t in dece_ious],
            "bins": int(bins),
            "matching": matching,
            "max_dets": int(max_dets),
            "bootstrap": int(bootstrap),
            "seed": int(seed),
            "dece_features": list(dece_features),
        },
        "n_images": int(n_img),
        "n_detections": int(len(detections)),
        "n_gt": int(len(gt.image)),
        "metrics": records,
        "reliability": reliability_data,
    }


def _tied_resample(sel, d_img, within, d_score, flags_k, positions, npig) -> tuple[np.ndarray, np.ndarray]:
    """One resample built explicitly (each drawn image a new id, in draw order), for categories with tied
    scores, where the order among tied detections of different draws matters to pycocotools."""
    by_image = sel[np.lexsort((within[sel], d_img[sel]))]
    column = np.empty(len(d_img), dtype=np.int64)
    column[sel] = np.arange(len(sel))
    img_sorted = d_img[by_image]
    start = np.searchsorted(img_sorted, positions, side="left")
    stop = np.searchsorted(img_sorted, positions, side="right")
    n = stop - start
    expanded = by_image[np.repeat(start - np.cumsum(n) + n, n) + np.arange(n.sum())]
    expanded = expanded[np.argsort(-d_score[expanded], kind="stable")]
    flags = flags_k[:, column[expanded]]
    return coco_curves(flags, np.ones((1, len(expanded))), npig)
