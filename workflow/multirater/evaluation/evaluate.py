"""Evaluation of a detections file against a COCO ground truth: the metrics-file dict
(docs/file-contracts.md) with mAP, AP50, AP75, mAR, D-ECE and reliability data, each with bootstrap resamples.

- mAP, AP50, AP75 and mAR equal pycocotools COCOeval (bbox, area "all", maxDets = ``max_dets``): ``core.coco_ap``.
- D-ECE over all detections of the test images (``dece.py``), matched with ``matching`` (``greedy`` = COCO's
  rule, ``hungarian`` = maximum total IoU) at each IoU threshold (``core.assignment``).
- D-ECE-soft (``dece_soft.py``), with ``soft_gt`` label sets of the same images: D-ECE against the share of
  those label sets whose boxes each detection matches, one row per IoU threshold after D-ECE's.
- Bootstrap: matching is done once per image; a resample only reweights images by how often they were drawn.
- D-ECE reference (``dece_reference.py``): the D-ECE of a perfectly calibrated detector with the same scores on
  these images (mean and 95 % range of ``dece_reference_draws`` draws), once per evaluation, as the IoU
  threshold does not enter it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from multirater.core.assignment import PairedDetections, ground_truth_pairs, match_detections
from multirater.core.coco_ap import COCO_IOUS, average_precision, curves, mean_valid, resampled_ap_ar
from multirater.core.errors import UserError
from multirater.core.ground_truth import GroundTruth, parse_ground_truth
from multirater.evaluation.bootstrap import resample_counts, resample_indices, summarize
from multirater.evaluation.dece import box_features, dece, dece_bins, resampled_dece
from multirater.evaluation.dece_reference import dece_reference
from multirater.evaluation.dece_soft import parse_soft_label_sets, soft_targets
from multirater.evaluation.metrics import DECE, DECE_SOFT, METRICS
from multirater.evaluation.reliability import reliability
from multirater.evaluation.settings import DECE_REFERENCE_DRAWS, check_settings
from multirater.io.detections import Detections


def evaluate(
    gt_coco: dict,
    detections: Detections,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    bins: int = 10,
    matching: str = "greedy",
    max_dets: int = 100,
    bootstrap: int = 100,
    seed: int = 0,
    dece_features: Sequence[str] = (),
    dece_reference_draws: int = DECE_REFERENCE_DRAWS,
    gt_name: str | None = None,
    pred_name: str | None = None,
    soft_gt: Sequence[dict] = (),
    soft_gt_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The metrics-file dict of ``detections`` against the COCO dict ``gt_coco``.

    The evaluated images are the ground truth's (ascending id); a ground-truth image without detections
    counts as an image with none; a detection on an image outside the ground truth is an error. The
    detections' ``meta.identity``, when present, is copied to the result's top-level ``identity``. With
    ``dece_reference_draws`` > 0 the result's top-level ``dece_reference`` holds the finite-sample reference
    of every D-ECE entry (``{"draws", "seed", "mean", "p2.5", "p97.5"}``, same bins and features). With
    ``soft_gt`` (COCO dicts of the ground truth's images, named ``soft_gt_names``) a D-ECE-soft entry follows
    each D-ECE entry (``dece_soft``), and ``settings.soft_gt`` names them.
    """
    dece_features = tuple(dece_features)
    check_settings(iou_thresholds=iou_thresholds, bins=bins, matching=matching, max_dets=max_dets,
                   bootstrap=bootstrap, dece_features=dece_features, dece_reference_draws=dece_reference_draws)
    gt_label = gt_name or "<ground truth>"
    pred_label = pred_name or "<detections>"
    identity = _identity(detections, pred_label)
    gt = parse_ground_truth(gt_coco, gt_label)
    soft_sets, soft_names = parse_soft_label_sets(gt, soft_gt, soft_gt_names, gt_label)
    indices = resample_indices(len(gt.image_ids), int(bootstrap), int(seed)) if bootstrap else None
    dece_ious = np.array([float(t) for t in iou_thresholds])
    records, reliability_data, dets, features = _records(
        gt, detections, indices, dece_ious, int(bins), matching, int(max_dets), dece_features, gt_label, pred_label,
        soft_sets)

    result = {} if identity is None else {"identity": identity}
    result.update({
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
            **({"soft_gt": soft_names} if soft_sets else {}),
        },
        "n_images": int(len(gt.image_ids)),
        "n_detections": int(len(detections)),
        "n_gt": int(len(gt.image)),
        "metrics": records,
        "reliability": reliability_data,
    })
    if dece_reference_draws:
        result["dece_reference"] = dece_reference(dets.score, int(bins), features, int(dece_reference_draws),
                                                  int(seed))
    return result


def resample_values(
    gt: GroundTruth,
    detections: Detections,
    indices: np.ndarray,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    bins: int = 10,
    matching: str = "greedy",
    max_dets: int = 100,
    dece_features: Sequence[str] = (),
    gt_label: str = "<ground truth>",
    pred_label: str = "<detections>",
    soft_sets: Sequence[GroundTruth] = (),
) -> list[tuple[tuple[str, float | None], np.ndarray]]:
    """Every metric of :func:`evaluate` on the given resamples only: ``indices`` (R, I) are the drawn image
    positions of R resamples (rows of :func:`resample_indices`); returns ``((metric, iou), values (R,))`` in
    evaluate's order, NaN where undefined. Each resample's value is the one evaluate gives it (the same
    arithmetic, row by row), whichever other resamples are asked for with it. ``soft_sets``: D-ECE-soft's label
    sets, parsed and checked (``dece_soft.parse_soft_label_sets``), as evaluate's ``soft_gt``."""
    dece_ious = np.array([float(t) for t in iou_thresholds])
    records = _records(gt, detections, np.asarray(indices), dece_ious, int(bins), matching, int(max_dets),
                       tuple(dece_features), gt_label, pred_label, soft_sets)[0]
    return [((r["metric"], r["iou"]), np.array([np.nan if v is None else v for v in r["values"]], dtype=np.float64))
            for r in records]


def _records(gt: GroundTruth, detections: Detections, indices: np.ndarray | None, dece_ious: np.ndarray, bins: int,
             matching: str, max_dets: int, dece_features: tuple[str, ...], gt_label: str, pred_label: str,
             soft_sets: Sequence[GroundTruth] = ()) -> tuple[list[dict[str, Any]], dict, PairedDetections,
                                                             np.ndarray | None]:
    """The metric records (with the resamples ``indices``, if any), the reliability data, the paired
    detections and their D-ECE features; D-ECE-soft records too with ``soft_sets``."""
    dets = _paired_detections(gt, detections, gt_label, pred_label)
    if dece_features and not (np.isfinite(gt.widths).all() and np.isfinite(gt.heights).all()):
        raise UserError("dece_features needs 'width' and 'height' of every image", gt_label)
    coco_flags, dece_flags = _match(gt, dets, dece_ious, matching)
    counts = None if indices is None else resample_counts(indices, len(gt.image_ids))
    records = _coco_records(gt, dets, coco_flags, max_dets, indices, counts)
    features = box_features(dece_features, dets.boxes, gt.widths[dets.image], gt.heights[dets.image]) \
        if dece_features else None
    soft = soft_targets(dets, soft_sets, dece_ious, matching) if soft_sets else None
    dece_records, reliability_data = _dece_records(dets, dece_ious, dece_flags, bins, features, counts, soft)
    return records + dece_records, reliability_data, dets, features


def _match(gt: GroundTruth, dets: PairedDetections, dece_ious: np.ndarray,
           matching: str) -> tuple[np.ndarray, np.ndarray]:
    """Matched flags at COCO's thresholds (always COCO's greedy rule) and at D-ECE's (``matching``)."""
    g_key, g_box = ground_truth_pairs(gt)
    if matching == "greedy":  # one pass for COCO's thresholds and the D-ECE ones
        flags = match_detections(dets.key, dets.boxes, g_key, g_box, np.r_[COCO_IOUS, dece_ious], "greedy")
        return flags[: len(COCO_IOUS)], flags[len(COCO_IOUS) :]
    return (match_detections(dets.key, dets.boxes, g_key, g_box, COCO_IOUS, "greedy"),
            match_detections(dets.key, dets.boxes, g_key, g_box, dece_ious, matching))


def _coco_records(gt: GroundTruth, dets: PairedDetections, flags: np.ndarray, max_dets: int,
                  indices: np.ndarray | None, counts: np.ndarray | None) -> list[dict[str, Any]]:
    """mAP, AP50, AP75 and mAR: the mean over thresholds and categories with ground truth, per resample too."""
    precision, recall = curves(gt, dets, flags, max_dets)
    ap, ar = average_precision(precision)[None], recall[None]  # (1, T, K)
    ap_boot = ar_boot = None
    if counts is not None:
        ap_boot, ar_boot = resampled_ap_ar(gt, dets, flags, max_dets, indices, counts)
    records = []
    for name, metric in METRICS.items():
        if metric.coco is None:
            continue
        value, boot = (ar, ar_boot) if metric.coco.recall else (ap, ap_boot)
        thresholds = metric.coco.thresholds
        records.append({"metric": name, "iou": None,
                        **summarize(mean_valid(value[:, thresholds])[0],
                                    None if boot is None else mean_valid(boot[:, thresholds]))})
    return records


def _dece_records(dets: PairedDetections, ious: np.ndarray, flags: np.ndarray, bins: int,
                  features: np.ndarray | None, counts: np.ndarray | None,
                  soft: np.ndarray | None = None) -> tuple[list[dict[str, Any]], dict]:
    """D-ECE records (per resample too) and reliability data, one per IoU threshold of D-ECE; with ``soft``
    (T, N) targets, a D-ECE-soft record after each D-ECE record."""
    bin_id = dece_bins(dets.score, bins, features)
    records, reliability_data = [], {}
    for t, (thr, matched) in enumerate(zip(ious, flags)):
        targets = [(DECE, matched)] + ([(DECE_SOFT, soft[t])] if soft is not None else [])
        for metric, target in targets:
            gap = target - dets.score  # per detection: target minus confidence; a bin's term is |sum of gaps| / N
            records.append({"metric": metric, "iou": float(thr),
                            **summarize(dece(dets.score, target, bins, features),
                                        None if counts is None else resampled_dece(bin_id, dets.image, gap, counts))})
        reliability_data[f"{float(thr):g}"] = reliability(dets.score, matched, bins)
    return records, reliability_data


def _identity(detections: Detections, pred_label: str) -> dict[str, Any] | None:
    """The detections' ``meta.identity`` (which model or ensemble made them), or None when absent."""
    identity = (detections.meta or {}).get("identity")
    if identity is not None and not isinstance(identity, dict):
        raise UserError(f"must be an object, got {identity!r}", pred_label, "meta.identity")
    return copy.deepcopy(identity)


def _paired_detections(gt: GroundTruth, detections: Detections, gt_label: str, pred_label: str) -> PairedDetections:
    """The detections as ground-truth positions, in COCO's order; one outside the ground truth is an error."""
    image = _positions(gt.image_ids, detections.image_id, "image_id", f"an image of the ground truth {gt_label}",
                       pred_label)
    category = _positions(gt.category_ids, detections.category_id, "category_id",
                          f"a category of the ground truth {gt_label}", pred_label)
    return PairedDetections.sort(image, category, detections.scores, detections.boxes, len(gt.category_ids))


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
