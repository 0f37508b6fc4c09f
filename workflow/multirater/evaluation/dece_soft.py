"""D-ECE-soft: the detection calibration error against the share of label sets (e.g. raters) that hold an
object, instead of against one reference.

For N detections with confidences c_i and R label sets of the test images (each rater's own labels), the
target of detection i is the fraction of the label sets whose boxes it matches,

    y_i = (1 / R) * sum_{r = 1..R} m_r(i),

where m_r(i) = 1 if detection i is matched to a box of label set r at the IoU threshold, else 0. Each label
set is matched on its own, exactly as D-ECE matches the ground truth (``core.assignment``: per image,
detections in descending score order, COCO's greedy rule or the Hungarian one, the same ``matching``). With
D-ECE's bins B_b (``dece.dece_bins``: equal-width confidence bins, optionally joint with box features),

    D-ECE-soft = sum_b |B_b| / N * |mean_{i in B_b} y_i - mean_{i in B_b} c_i|
               = sum_b |sum_{i in B_b} (y_i - c_i)| / N.

It is 0 when in every bin the detections' mean confidence is the mean share of raters who labelled what
they found: the score then estimates the share of raters who would label the object, which is what an
ensemble of rater-specific models aims at (one label set: D-ECE-soft is D-ECE against that set). Like
D-ECE it is computed on the test images and, with the same weights, on every bootstrap resample of them
(``dece.resampled_dece``), so it is paired across files evaluated with the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multirater.core.assignment import PairedDetections, ground_truth_pairs, match_detections
from multirater.core.errors import UserError
from multirater.core.ground_truth import GroundTruth, parse_ground_truth


def check_same_images(gt: GroundTruth, label_set: GroundTruth, gt_name: str, name: str) -> None:
    """A label set of D-ECE-soft must label exactly the ground truth's images, with its categories."""
    if not np.array_equal(gt.image_ids, label_set.image_ids):
        missing = np.setdiff1d(gt.image_ids, label_set.image_ids)
        extra = np.setdiff1d(label_set.image_ids, gt.image_ids)
        parts = ([f"lacks {len(missing)} image(s) of it (e.g. id {int(missing[0])})"] if len(missing) else []) + \
                ([f"has {len(extra)} image(s) it has not (e.g. id {int(extra[0])})"] if len(extra) else [])
        raise UserError(f"its images differ from the ground truth's ({gt_name}): it {' and '.join(parts)}", name)
    if not np.array_equal(gt.category_ids, label_set.category_ids):
        raise UserError(f"its categories {label_set.category_ids.tolist()} differ from the ground truth's "
                        f"{gt.category_ids.tolist()} ({gt_name})", name)


def parse_soft_label_sets(gt: GroundTruth, cocos: Sequence[dict], names: Sequence[str] | None,
                          gt_name: str) -> tuple[list[GroundTruth], list[str]]:
    """D-ECE-soft's label sets (COCO dicts) parsed and checked against the ground truth ``gt``
    (:func:`check_same_images`), with their names (``<soft label set k>`` where ``names`` is None)."""
    names = list(names) if names is not None else [f"<soft label set {k + 1}>" for k in range(len(cocos))]
    label_sets = [parse_ground_truth(coco, name) for coco, name in zip(cocos, names)]
    for label_set, name in zip(label_sets, names):
        check_same_images(gt, label_set, gt_name, name)
    return label_sets, names


def soft_targets(dets: PairedDetections, label_sets: Sequence[GroundTruth], ious: np.ndarray,
                 matching: str) -> np.ndarray:
    """(T, N) target y_i of every detection at every IoU threshold: the share of ``label_sets`` it matches.

    ``dets`` are in the positions of a ground truth with the same images and categories as every label set
    (:func:`check_same_images`)."""
    if not label_sets:
        raise UserError("D-ECE-soft needs at least one label set")
    total = np.zeros((len(ious), len(dets.score)))
    for label_set in label_sets:
        g_key, g_box = ground_truth_pairs(label_set)
        total += match_detections(dets.key, dets.boxes, g_key, g_box, ious, matching)
    return total / len(label_sets)
