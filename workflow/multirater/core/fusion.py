"""Ensemble fusion of several models' detections (Campi et al., complete-linkage grouping); the ensembles
stage fuses models, the data stage fuses label sets into a majority consensus.

Per image and category:

1. pool every model's boxes, ordered by score descending (ties: model index, then the box's index in its file);
2. the highest remaining box opens a group;
3. repeatedly add the remaining box, from a model not yet in the group, whose minimum IoU with every member
   is largest, while that minimum is >= the threshold (equal minima: the box earlier in the order of step 1);
4. fused box = mean of the members' coordinates; fused score = sum of member scores / S, S = number of
   models (``score_norm="ensemble"``, absent models count as 0) or the group size (``"group"``, Miller et
   al.); ``merge="max-score"`` keeps the most confident member's box and score (Lyu et al.).

Speed and memory: a group only ever holds boxes linked to its opener (IoU >= threshold), so only linked pairs
matter. ``fusion_pairs`` finds them with a grid of box centres (never an all-pairs IoU matrix),
``fusion_grouping`` builds groups at once in rounds; both use memory proportional to the number of boxes.
"""

from __future__ import annotations

import numpy as np

from multirater.core.errors import UserError
from multirater.core.fusion_grouping import group_openers
from multirater.core.fusion_pairs import linked_pairs
from multirater.io.detections import Detections
from multirater.io.extra_columns import ExtraColumns

SCORE_NORMS = ("ensemble", "group")
MERGES = ("mean", "max-score")


def _check_options(n_models: int, iou: float, sources: list[str] | None, score_norm: str, merge: str) -> None:
    if n_models == 0:
        raise UserError("fusion needs at least one detections file")
    if not 0.0 < iou <= 1.0:
        raise UserError(f"iou must lie in (0, 1], got {iou}")
    if score_norm not in SCORE_NORMS:
        raise UserError(f"score_norm must be one of {', '.join(SCORE_NORMS)}, got {score_norm!r}")
    if merge not in MERGES:
        raise UserError(f"merge must be one of {', '.join(MERGES)}, got {merge!r}")
    if sources is not None and len(sources) != n_models:
        raise UserError(f"sources gives {len(sources)} names for {n_models} detections files (one per file)")


def _pool(models: list[Detections]) -> dict[str, np.ndarray]:
    """Concatenate all models' boxes, sorted into step 1's order within each (image, category)."""
    model = np.concatenate([np.full(len(m), i, dtype=np.int64) for i, m in enumerate(models)])
    index = np.concatenate([np.arange(len(m), dtype=np.int64) for m in models])
    image = np.concatenate([m.image_id for m in models])
    category = np.concatenate([m.category_id for m in models])
    boxes = np.concatenate([m.boxes for m in models]).reshape(-1, 4)
    scores = np.concatenate([m.scores for m in models])
    # a stable sort: equal scores keep the concatenation order, which is (model, index)
    order = np.lexsort((-scores, category, image))
    pooled = {"model": model, "index": index, "image": image, "category": category, "boxes": boxes, "scores": scores}
    return {k: v[order] for k, v in pooled.items()}


def pool_pairs(pool: dict[str, np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linked pairs (i, j, IoU) of a pool sorted as step 1 sorts it: same image and category, different
    models, IoU >= ``threshold``."""
    image, category = pool["image"], pool["category"]
    # one key per (image, category); the pool is sorted by both, so a key changes where either does
    changes = (np.diff(image) != 0) | (np.diff(category) != 0)
    key = np.r_[0, np.cumsum(changes)]
    return linked_pairs(key, pool["boxes"], pool["model"], threshold)


def groups_of_pairs(boxes: np.ndarray, model: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
                    threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(group number of each box, position of each group's opener) from the pool's linked ``pairs``."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    opener = group_openers(boxes, model, *pairs, threshold)
    is_opener = opener == np.arange(n)
    rank = np.cumsum(is_opener) - 1
    return rank[opener], np.flatnonzero(is_opener)


def _group_and_openers(
    image: np.ndarray, category: np.ndarray, boxes: np.ndarray, model: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(group number of each box, position of each group's opener); see :func:`group_boxes`."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = pool_pairs({"image": image, "category": category, "boxes": boxes, "model": model}, threshold)
    return groups_of_pairs(boxes, model, pairs, threshold)


def group_boxes(
    image: np.ndarray, category: np.ndarray, boxes: np.ndarray, model: np.ndarray, threshold: float
) -> np.ndarray:
    """Group number of each box; the boxes must already be in step 1's order within each (image, category).

    Groups open in the order of their opener (each group's first box), so numbering groups by their opener's
    position numbers them by (image, category) and then in opening order.
    """
    return _group_and_openers(image, category, boxes, model, threshold)[0]


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
    pool = _pool(models)
    # the opener is each group's first box in step 1's order: its most confident
    group, first = _group_and_openers(pool["image"], pool["category"], pool["boxes"], pool["model"], iou)
    return fused_detections(models, pool, group, first, iou, sources, score_norm, merge)


def fused_detections(models: list[Detections], pool: dict[str, np.ndarray], group: np.ndarray, first: np.ndarray,
                     iou: float, sources: list[str] | None, score_norm: str, merge: str) -> Detections:
    """The fused detections of ``models`` from their sorted ``pool`` and its groups (``group``, ``first``:
    :func:`groups_of_pairs`); see :func:`fuse`."""
    n_models = len(models)
    image_ids = np.unique(np.concatenate([m.image_ids for m in models]))
    n_groups = len(first)
    size = np.bincount(group, minlength=n_groups).astype(np.float64)
    total = np.bincount(group, weights=pool["scores"], minlength=n_groups).astype(np.float64)

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

    counts: dict[str, tuple[np.ndarray, list[str]]] = {}
    if sources is not None:
        names = list(dict.fromkeys(sources))
        src = np.array([names.index(s) for s in sources], dtype=np.int64)[pool["model"]]
        votes = np.bincount(group * len(names) + src, minlength=n_groups * len(names))
        counts["votes"] = (votes.reshape(n_groups, len(names)), names)
    extra = ExtraColumns({"n_models": size.astype(np.int64), "score_std": score_std}, counts)
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
