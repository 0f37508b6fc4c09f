"""Matching: greedy equals pycocotools' evaluateImg matches (incl. its tie rule); hungarian maximises total IoU."""

from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multirater.core.boxes import iou, iou_matrix
from multirater.core.matching import greedy_match, greedy_match_sorted, hungarian_match


def _coco_matches(gt_boxes, det_boxes, scores, threshold):
    """pycocotools' matched GT index of each detection (-1 if none), one image, one category."""
    gt = {
        "images": [{"id": 1, "width": 200, "height": 200}],
        "annotations": [
            {"id": k + 1, "image_id": 1, "category_id": 1, "bbox": list(map(float, b)), "area": float(b[2] * b[3]),
             "iscrowd": 0}
            for k, b in enumerate(gt_boxes)
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    dets = [{"image_id": 1, "category_id": 1, "bbox": list(map(float, b)), "score": float(s)}
            for b, s in zip(det_boxes, scores)]
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(dets), "bbox")
        ev.params.iouThrs = np.array([threshold])
        ev.params.maxDets = [len(dets)]
        ev.evaluate()
    e = ev.evalImgs[0]  # only 'all' area range first
    out = np.full(len(dets), -1)
    for dt_id, gt_id in zip(e["dtIds"], e["dtMatches"][0]):
        out[dt_id - 1] = int(gt_id) - 1 if gt_id > 0 else -1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_greedy_equals_pycocotools(seed):
    rng = np.random.default_rng(seed)
    gt = np.column_stack([rng.uniform(0, 60, (12, 2)), rng.uniform(5, 30, (12, 2))])
    gt[3] = gt[2]  # identical GT boxes: equal IoUs, pycocotools keeps the last
    det = np.r_[gt[rng.integers(0, 12, 10)] + rng.normal(0, 2, (10, 4)), gt[2:3]]
    det[:, 2:] = np.abs(det[:, 2:]) + 1
    scores = np.round(rng.random(len(det)), 1)  # ties in score keep file order
    for threshold in (0.3, 0.5, 0.75):
        got = greedy_match(iou_matrix(det, gt), scores, threshold)
        np.testing.assert_array_equal(got, _coco_matches(gt, det, scores, threshold))


def test_greedy_hand_computed_ties_and_threshold_one():
    # Two GT boxes with equal IoU: pycocotools takes the last one.
    assert greedy_match(np.array([[0.8, 0.8]]), np.array([0.9]), 0.5).tolist() == [1]
    # The higher-scored detection chooses first, whatever the file order.
    iou = np.array([[0.6], [0.9]])
    assert greedy_match(iou, np.array([0.2, 0.7]), 0.5).tolist() == [-1, 0]
    # An exact IoU of 1 matches at threshold 1 (pycocotools caps it at 1 - 1e-10); below the threshold never.
    assert greedy_match(np.array([[1.0]]), np.array([0.5]), 1.0).tolist() == [0]
    assert greedy_match(np.array([[0.49]]), np.array([0.5]), 0.5).tolist() == [-1]


def test_greedy_sorted_runs_many_pairs_and_thresholds_at_once():
    rng = np.random.default_rng(7)
    iou = rng.random((4, 6, 5)) * (rng.random((4, 6, 5)) < 0.5)
    thresholds = np.array([0.3, 0.6])
    batch = greedy_match_sorted(iou, thresholds)
    for p, (t, thr) in itertools.product(range(4), enumerate(thresholds)):
        # rows already in score order: decreasing scores reproduce it
        one = greedy_match(iou[p], -np.arange(6.0), thr)
        np.testing.assert_array_equal(batch[p, t], one)


def test_hungarian_maximises_total_iou_where_greedy_does_not():
    iou = np.array([[0.7, 0.6], [0.65, 0.0]])
    assert greedy_match(iou, np.array([0.9, 0.8]), 0.5).tolist() == [0, -1]
    assert hungarian_match(iou, 0.5).tolist() == [1, 0]
    # Pairs below the threshold are never matched, even if the assignment would use them.
    assert hungarian_match(np.array([[0.4, 0.0], [0.0, 0.9]]), 0.5).tolist() == [-1, 1]
    assert hungarian_match(np.zeros((0, 3)), 0.5).shape == (0,)


def test_one_iou_for_matrices_pairs_and_padded_batches_equals_pycocotools_bitwise():
    rng = np.random.default_rng(11)
    a = np.column_stack([rng.uniform(0, 50, (30, 2)), rng.uniform(0, 30, (30, 2))])
    b = np.column_stack([rng.uniform(0, 50, (20, 2)), rng.uniform(0, 30, (20, 2))])
    a[0, 2] = b[0, 3] = 0.0  # degenerate boxes: empty union with each other
    reference = np.asarray(mask_utils.iou(a.tolist(), b.tolist(), [0] * len(b)))
    np.testing.assert_array_equal(iou_matrix(a, b), reference)
    # paired: a[k] with b[k]
    np.testing.assert_array_equal(iou(a[:20], b), np.diagonal(reference[:20]))
    # batched: (P, D, 1, 4) with (P, 1, G, 4)
    batch = iou(a.reshape(3, 10, 1, 4), b.reshape(1, 1, 20, 4))
    np.testing.assert_array_equal(batch.reshape(30, 20), reference)
    assert iou(np.zeros(4), np.zeros(4)) == 0.0  # no union: IoU 0
