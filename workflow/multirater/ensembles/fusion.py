"""Ensemble fusion of several models' detections (Campi et al., complete-linkage grouping).

Per image and category:

1. pool every model's boxes, ordered by score descending (ties: model index, then the box's index in its file);
2. the highest remaining box opens a group;
3. repeatedly add the remaining box, from a model not yet in the group, whose minimum IoU with every member
   is largest, while that minimum is >= the threshold (equal minima: the box earlier in the order of step 1);
4. fused box = mean of the members' coordinates; fused score = sum of member scores / S, S = number of
   models (``score_norm="ensemble"``, absent models count as 0) or the group size (``"group"``, Miller et
   al.); ``merge="max-score"`` keeps the most confident member's box and score (Lyu et al.).

Speed: a group only ever holds boxes linked to its opener by IoU >= threshold, so groups never cross the
connected components of the "IoU >= threshold" graph and each component can be grouped on its own. Pairs
are found with a sweep over x (no dense IoU matrix), the IoU of each pair is computed once, and all
components of similar size are grouped in lockstep as padded numpy arrays (one box per step each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from multirater.io.detections import Detections
from multirater.core.errors import UserError

SCORE_NORMS = ("ensemble", "group")
MERGES = ("mean", "max-score")


def _check_options(n_models: int, iou: float, sources: list[str] | None, score_norm: str, merge: str) -> None:
    if n_models == 0:
        raise UserError("fusion needs at least one detections file")
    if not 0.0 < iou <= 1.0:
        raise UserError(f"--iou must lie in (0, 1], got {iou}")
    if score_norm not in SCORE_NORMS:
        raise UserError(f"--score-norm must be one of {', '.join(SCORE_NORMS)}, got {score_norm!r}")
    if merge not in MERGES:
        raise UserError(f"--merge must be one of {', '.join(MERGES)}, got {merge!r}")
    if sources is not None and len(sources) != n_models:
        raise UserError(f"--sources gives {len(sources)} names for {n_models} detections files (one per file)")


def _pool(models: list[Detections]) -> dict[str, np.ndarray]:
    """Concatenate all models' boxes, sorted into step 1's order within each (image, category)."""
    model = np.concatenate([np.full(len(m), i, dtype=np.int64) for i, m in enumerate(models)])
    index = np.concatenate([np.arange(len(m), dtype=np.int64) for m in models])
    image = np.concatenate([m.image_id for m in models])
    category = np.concatenate([m.category_id for m in models])
    boxes = np.concatenate([m.boxes for m in models]).reshape(-1, 4)
    scores = np.concatenate([m.scores for m in models])
    order = np.lexsort((index, model, -scores, category, image))
    pooled = {"model": model, "index": index, "image": image, "category": category, "boxes": boxes, "scores": scores}
    return {k: v[order] for k, v in pooled.items()}


def _linked_pairs(
    image: np.ndarray, category: np.ndarray, boxes: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of boxes in the same image and category with IoU >= threshold, and its IoU.

    A sweep, not a dense matrix: IoU >= t needs an overlap of at least t times each box's width and height,
    so after sorting on the left edge within each (image, category), box i can only pair with the boxes
    whose left edge lies before x2_i - t * w_i; those are then filtered on height before the exact IoU.
    """
    n = len(boxes)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty, np.zeros(0)
    x1, y1, w, h = (np.ascontiguousarray(boxes[:, c]) for c in range(4))
    x2, y2 = x1 + w, y1 + h
    sweep = np.lexsort((x1, category, image))
    key_change = np.flatnonzero((np.diff(image[sweep]) != 0) | (np.diff(category[sweep]) != 0)) + 1
    starts = np.r_[0, key_change]
    stops = np.r_[key_change, n]
    sx1 = x1[sweep]
    # a small margin keeps the window a superset of the pairs the exact IoU below accepts
    reach = (x2 - threshold * w)[sweep] + 1e-9 * (1.0 + np.abs(x2[sweep]))
    ends = np.empty(n, dtype=np.int64)
    for lo, hi in zip(starts.tolist(), stops.tolist()):
        ends[lo:hi] = lo + np.searchsorted(sx1[lo:hi], reach[lo:hi], side="right")
    first = np.arange(1, n + 1)
    counts = np.maximum(ends - first, 0)
    a = np.repeat(np.arange(n), counts)
    b = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(first, counts)
    i, j = sweep[a], sweep[b]
    ih = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
    tall = ih >= threshold * np.maximum(h[i], h[j]) - 1e-9 * (1.0 + np.abs(y2[i]))
    i, j = i[tall], j[tall]
    iou = _iou_pairs(boxes[i], boxes[j])
    keep = iou >= threshold
    i, j, iou = i[keep], j[keep], iou[keep]
    return np.minimum(i, j), np.maximum(i, j), iou


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[k] with b[k], with the arithmetic of pycocotools (and of ``boxes.iou_matrix``)."""
    iw = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _group_lockstep(iou: np.ndarray, model: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Complete-linkage grouping of C padded components at once.

    ``iou`` (C, K, K): pair IoUs, 0 where below the threshold; ``model`` (C, K); ``valid`` (C, K) marks real
    boxes. Columns are in step 1's order. Returns (C, K) group numbers (in opening order) within each
    component, -1 for padding.
    """
    n_comp, k = valid.shape
    label = np.full((n_comp, k), -1, dtype=np.int64)
    remaining = valid.copy()
    min_iou = np.zeros((n_comp, k))
    blocked = np.zeros((n_comp, k), dtype=bool)
    is_open = np.zeros(n_comp, dtype=bool)
    n_groups = np.zeros(n_comp, dtype=np.int64)
    rows = np.arange(n_comp)
    for _ in range(k):
        candidate = np.where(remaining & ~blocked, min_iou, -1.0)
        best = candidate.argmax(axis=1)  # first maximum: the earliest box in step 1's order
        add = is_open & (candidate[rows, best] >= threshold)
        has_left = remaining.any(axis=1)
        opens = ~add & has_left  # no candidate left: close the group and open the next one
        active = add | opens
        if not active.any():
            break
        pick = np.where(add, best, remaining.argmax(axis=1))
        r, p = rows[active], pick[active]
        n_groups[opens] += 1
        label[r, p] = n_groups[r] - 1
        remaining[r, p] = False
        row_iou = iou[r, p]
        joined = add[active][:, None]
        min_iou[r] = np.where(joined, np.minimum(min_iou[r], row_iou), row_iou)
        same_model = model[r] == model[r, p][:, None]
        blocked[r] = np.where(joined, blocked[r] | same_model, same_model)
        is_open[active] = True
    return label


def _size_buckets(sizes: np.ndarray) -> list[np.ndarray]:
    """Component indices grouped by size (powers of two), so padding stays small."""
    bucket = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
    return [np.flatnonzero(bucket == b) for b in np.unique(bucket)]


def group_boxes(
    image: np.ndarray, category: np.ndarray, boxes: np.ndarray, model: np.ndarray, threshold: float
) -> np.ndarray:
    """Group number of each box; the boxes must already be in step 1's order within each (image, category).

    Groups open in the order of their opener (each group's first box), so numbering groups by their opener's
    position numbers them by (image, category) and then in opening order.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    i, j, iou = _linked_pairs(image, category, boxes, threshold)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # List the boxes component by component, each component in step 1's order.
    order = np.lexsort((np.arange(n), component))
    comp_sorted = component[order]
    comp_start = np.flatnonzero(np.r_[True, comp_sorted[1:] != comp_sorted[:-1]])
    sizes = np.diff(np.r_[comp_start, n])
    position = np.empty(n, dtype=np.int64)  # position of each box within its component
    position[order] = np.arange(n) - np.repeat(comp_start, sizes)
    comp_index = np.empty(n, dtype=np.int64)  # dense component number of each box
    comp_index[order] = np.repeat(np.arange(len(sizes)), sizes)

    opener = np.arange(n)  # index of each box's group opener; singletons open their own group
    members = order  # boxes listed component by component
    pair_comp = comp_index[i]
    for bucket in _size_buckets(sizes):
        k = int(sizes[bucket].max())
        if k == 1:
            continue
        local = np.full(len(sizes), -1, dtype=np.int64)
        local[bucket] = np.arange(len(bucket))
        c = len(bucket)
        slot = np.full((c, k), -1, dtype=np.int64)
        in_bucket = local[comp_index[members]] >= 0
        box_ids = members[in_bucket]
        slot[local[comp_index[box_ids]], position[box_ids]] = box_ids
        valid = slot >= 0
        pad_iou = np.zeros((c, k, k))
        sel = local[pair_comp] >= 0
        pc, pi, pj, pv = local[pair_comp[sel]], position[i[sel]], position[j[sel]], iou[sel]
        pad_iou[pc, pi, pj] = pv
        pad_iou[pc, pj, pi] = pv
        pad_model = np.where(valid, model[np.maximum(slot, 0)], -1)
        label = _group_lockstep(pad_iou, pad_model, valid, threshold)
        # The opener of group g in a component is its first box (lowest position) with label g.
        flat_label = np.where(valid, label, k)  # padding never opens a group
        first_pos = np.full((c, k + 1), k, dtype=np.int64)
        cc = np.repeat(np.arange(c), k)
        np.minimum.at(first_pos, (cc, flat_label.ravel()), np.tile(np.arange(k), c))
        opener_pos = first_pos[np.arange(c)[:, None], np.where(valid, label, 0)]
        opener_box = slot[np.arange(c)[:, None], opener_pos]
        opener[slot[valid]] = opener_box[valid]
    # Group number = rank of the opener among openers (openers are in step 1's order).
    is_opener = opener == np.arange(n)
    rank = np.cumsum(is_opener) - 1
    return rank[opener]


def fuse(
    models: list[Detections],
    iou: float = 0.5,
    sources: list[str] | None = None,
    score_norm: str = "ensemble",
    merge: str = "mean",
) -> Detections:
    """Fuse several models' detections into one ensemble (see the module docstring for the rule).

    Each fused detection carries ``n_models`` (members), ``score_std`` (population std of the per-model
    scores the fused score averages: over all S models with absent ones as 0 for ``ensemble``, over the
    members for ``group``/``max-score``) and, with ``sources`` (one name per model), ``votes``
    ({source: members from that source's models}).
    """
    _check_options(len(models), iou, sources, score_norm, merge)
    n_models = len(models)
    image_ids = np.unique(np.concatenate([m.image_ids for m in models]))
    pool = _pool(models)
    group = group_boxes(pool["image"], pool["category"], pool["boxes"], pool["model"], iou)
    n_groups = int(group.max()) + 1 if len(group) else 0
    size = np.bincount(group, minlength=n_groups).astype(np.float64)
    total = np.bincount(group, weights=pool["scores"], minlength=n_groups).astype(np.float64)
    first = np.full(n_groups, len(group), dtype=np.int64)
    np.minimum.at(first, group, np.arange(len(group)))  # the opener: the group's most confident box

    if merge == "max-score":
        boxes = pool["boxes"][first]
        scores = pool["scores"][first]
    else:
        boxes = np.stack(
            [np.bincount(group, weights=pool["boxes"][:, c], minlength=n_groups) for c in range(4)], axis=1
        ) / size[:, None]
        scores = total / (n_models if score_norm == "ensemble" else size)

    spread_n = np.full(n_groups, float(n_models)) if (score_norm == "ensemble" and merge == "mean") else size
    mean = total / spread_n
    squares = np.bincount(group, weights=(pool["scores"] - mean[group]) ** 2, minlength=n_groups).astype(np.float64)
    squares += (spread_n - size) * mean**2  # absent models' zero scores
    score_std = np.sqrt(np.maximum(squares, 0.0) / spread_n)

    extra: list[dict[str, Any]] = [{"n_models": int(s), "score_std": float(d)} for s, d in zip(size, score_std)]
    if sources is not None:
        names = list(dict.fromkeys(sources))
        src = np.array([names.index(s) for s in sources], dtype=np.int64)[pool["model"]]
        votes = np.zeros((n_groups, len(names)), dtype=np.int64)
        np.add.at(votes, (group, src), 1)
        for rec, row in zip(extra, votes):
            rec["votes"] = {name: int(v) for name, v in zip(names, row)}
    # Keep what every input agrees on (e.g. the strategy); record how the ensemble was made.
    first_meta = models[0].meta or {}
    meta = {k: v for k, v in first_meta.items() if all((m.meta or {}).get(k) == v for m in models[1:])}
    meta["fusion"] = {"iou": iou, "score_norm": score_norm, "merge": merge, "models": n_models, "sources": sources}
    return Detections(
        image_ids=image_ids,
        image_id=pool["image"][first],
        category_id=pool["category"][first],
        boxes=boxes,
        scores=scores,
        extra=extra,
        meta=meta,
    )


def group_members(models: list[Detections], iou: float = 0.5) -> list[list[tuple[int, int]]]:
    """The groups ``fuse`` builds, in output order, each as its members' (model, index in file) pairs listed
    in step 1's order (for tests and diagnostics)."""
    _check_options(len(models), iou, None, "ensemble", "mean")
    pool = _pool(models)
    group = group_boxes(pool["image"], pool["category"], pool["boxes"], pool["model"], iou)
    members: list[list[tuple[int, int]]] = [[] for _ in range(int(group.max()) + 1 if len(group) else 0)]
    for g, m, k in zip(group.tolist(), pool["model"].tolist(), pool["index"].tolist()):
        members[g].append((m, k))
    return members
