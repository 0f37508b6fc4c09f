"""The two-level bootstrap of LSE_S and RSE_S: each resample redraws the test images and the ensemble's members.

The image-only bootstrap (``evaluate``) holds the trained models fixed, so its interval is conditional on one
draw of training noise. Here resample b draws its images exactly as the image-only bootstrap does (same seed,
same rows of :func:`multirater.evaluation.bootstrap.resample_indices`) and, in addition, fuses each ensemble from
a member set drawn from the pool of selected models and their replicates (:mod:`member_draws`). When every
member set gives the same fused detections, every value equals the image-only bootstrap's.

Cost: each distinct member set is fused once (every image) and evaluated on the resamples that use it only;
the pool's boxes are sorted and linked once for all member sets (:class:`multirater.ensembles.subsets.
SubsetFusion`: a member set's fusion is ``fuse``'s, bit for bit); matching and the weighted resample arithmetic
are ``evaluate``'s own.

The result is the member bootstrap file (docs/file-contracts.md)::

    {"format": "multirater-member-bootstrap", "size": S, "settings": {...}, "n_images": I,
     "ensembles": [{"kind": "lse"|"rse", "varies": bool, "warning": str|null, "sources": [...],
                    "draws": [[model ids], ...], "resample_draw": [...], "fused_sets": n,
                    "metrics": [{"metric", "iou", "values": [...]}]}, ...]}

``metrics`` is empty for an ensemble whose members cannot vary (``varies`` false; ``warning`` says why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.fusion import fuse
from multirater.ensembles.subsets import SubsetFusion
from multirater.core.ground_truth import parse_ground_truth
from multirater.evaluation.bootstrap import resample_indices
from multirater.evaluation.dece_soft import parse_soft_label_sets
from multirater.evaluation.evaluate import resample_values
from multirater.evaluation.member_draws import base_draw, draw_model_ids, member_draws, resample_draws
from multirater.evaluation.settings import check_settings
from multirater.io.detections import Detections
from multirater.selection.pool import PoolSource, ensemble_sources

FORMAT = "multirater-member-bootstrap"
KINDS = ("lse", "rse")


def source_warning(kind: str, size: int, source: PoolSource) -> str:
    """Why a source cannot vary the members of an ensemble."""
    return (f"{kind.upper()}_{size} takes all {len(source.configs)} selected {source.strategy} models, each trained "
            f"once: no other member set can be drawn, so training noise of these members is not in the "
            f"interval (select more models, selection.{'ls' if kind == 'lse' else 'rs'}, or train replicates, "
            "training.replicates)")


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _ensemble(gt: Any, kind: str, size: int, sources: list[PoolSource], indices: np.ndarray, n_draws: int,
              seed: int, load: Callable[[str, str, str], Detections], fusion: dict[str, Any],
              evaluation: dict[str, Any], labels: tuple[str, str]) -> dict[str, Any]:
    """One ensemble's record: its sources, draws and (when its members can vary) two-level values."""
    fixed = [s for s in sources if not s.varies]
    varies = bool(n_draws) and not fixed
    warnings = [source_warning(kind, size, s) for s in fixed]
    if not n_draws:
        warnings = [f"{kind.upper()}_{size}: the member bootstrap is off (evaluation.member_draws: 0)"]
    record: dict[str, Any] = {
        "kind": kind, "varies": varies, "warning": "; ".join(warnings) or None,
        "sources": [{"strategy": s.strategy, "configs": len(s.configs), "take": s.take,
                     "replicates": [len(c) for c in s.configs], "varies": s.varies} for s in sources],
        "base": draw_model_ids(sources, base_draw(sources)),
        "draws": [], "resample_draw": [], "fused_sets": 0, "metrics": [],
    }
    if not varies:
        return record
    draws = member_draws(sources, n_draws, seed, size, kind)
    which = resample_draws(len(indices), n_draws, kind)
    rows_of: dict[tuple, list[int]] = {}
    for b, m in enumerate(which.tolist()):
        rows_of.setdefault(draws[m], []).append(b)
    # every model of the pool once, in the pool's order (a draw lists its members in that order)
    every = [(s, k, r) for s, source in enumerate(sources) for k, runs in enumerate(source.configs)
             for r in range(len(runs))]
    position = {member: i for i, member in enumerate(every)}
    models = [load(sources[s].detections[k][r], sources[s].strategy, sources[s].configs[k][r]) for s, k, r in every]
    # linking the whole pool once pays when the member sets hold more models than the pool (the same result)
    shared = SubsetFusion(models, fusion["iou"]) if sum(map(len, rows_of)) > len(every) else None
    values: dict[tuple, np.ndarray] = {}
    for draw, rows in rows_of.items():
        chosen, names = [position[m] for m in draw], [sources[s].source for s, _, _ in draw]
        fused = shared.fuse(chosen, names, fusion["score_norm"], fusion["merge"]) if shared is not None else \
            fuse([models[i] for i in chosen], fusion["iou"], names, fusion["score_norm"], fusion["merge"])
        for key, v in resample_values(gt, fused, indices[rows], gt_label=labels[0],
                                      pred_label=f"{kind.upper()}_{size} {draw_model_ids(sources, draw)}",
                                      **evaluation):
            values.setdefault(key, np.full(len(indices), np.nan))[rows] = v
    record.update(draws=[draw_model_ids(sources, d) for d in draws], resample_draw=which.tolist(),
                  fused_sets=len(rows_of),
                  metrics=[{"metric": k[0], "iou": k[1], "values": [_number(x) for x in v]} for k, v in values.items()])
    return record


def member_bootstrap(
    gt_coco: dict,
    pool: dict[str, Any],
    size: int,
    load: Callable[[str, str, str], Detections],
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    bins: int = 10,
    matching: str = "greedy",
    max_dets: int = 100,
    bootstrap: int = 100,
    seed: int = 0,
    dece_features: Sequence[str] = (),
    member_draws: int = 10,
    fusion_iou: float = 0.5,
    score_norm: str = "ensemble",
    merge: str = "mean",
    gt_name: str | None = None,
    pool_name: str | None = None,
    soft_gt: Sequence[dict] = (),
    soft_gt_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The member bootstrap file's dict for LSE_size and RSE_size (see the module docstring).

    ``load(path, strategy, model_id)`` reads one pool model's detections (each file is asked for once per
    fused member set; the caller caches). Members are fused with the workflow's fusion settings and evaluated
    with its evaluation settings; ``bootstrap`` and ``seed`` must be the image bootstrap's for the two to pair.
    ``soft_gt`` (named ``soft_gt_names``): D-ECE-soft's label sets, as ``evaluate``'s, so D-ECE-soft gets
    two-level values too.
    """
    check_settings(iou_thresholds=iou_thresholds, bins=bins, matching=matching, max_dets=max_dets,
                   bootstrap=bootstrap, dece_features=tuple(dece_features))
    if int(bootstrap) < 1:
        raise UserError(f"needs bootstrap resamples, got {bootstrap}", None, "bootstrap")
    if isinstance(member_draws, bool) or int(member_draws) < 0 or int(member_draws) == 1:
        raise UserError(f"must be 0 (off) or at least 2, got {member_draws}", None, "member_draws")
    gt_label = gt_name or "<ground truth>"
    gt = parse_ground_truth(gt_coco, gt_label)
    soft_sets, soft_names = parse_soft_label_sets(gt, soft_gt, soft_gt_names, gt_label)
    indices = resample_indices(len(gt.image_ids), int(bootstrap), int(seed))
    fusion = {"iou": float(fusion_iou), "score_norm": score_norm, "merge": merge}
    evaluation = {"iou_thresholds": tuple(float(t) for t in iou_thresholds), "bins": int(bins), "matching": matching,
                  "max_dets": int(max_dets), "dece_features": tuple(dece_features), "soft_sets": soft_sets}
    ensembles = [_ensemble(gt, kind, int(size), ensemble_sources(pool, kind, int(size), pool_name), indices,
                           int(member_draws), int(seed), load, fusion, evaluation, (gt_label, pool_name or ""))
                 for kind in KINDS]
    return {
        "format": FORMAT,
        "size": int(size),
        "settings": {"gt": gt_name, "pool": pool_name, "bootstrap": int(bootstrap), "seed": int(seed),
                     "member_draws": int(member_draws), "iou_thresholds": list(evaluation["iou_thresholds"]),
                     "bins": int(bins), "matching": matching, "max_dets": int(max_dets),
                     "dece_features": list(dece_features), "fusion": fusion,
                     **({"soft_gt": soft_names} if soft_sets else {})},
        "n_images": int(len(gt.image_ids)),
        "ensembles": ensembles,
    }
