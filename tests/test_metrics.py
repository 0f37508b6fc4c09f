"""Evaluation: mAP/AP50/AP75/mAR against pycocotools COCOeval, D-ECE against a hand-computed case and an
independent implementation of netcal's binning, reliability data, and the errors on bad input."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multirater.cli import build_parser
from multirater.core.errors import UserError
from multirater.evaluation.commands import check_evaluate_flags
from multirater.evaluation.dece import dece
from multirater.evaluation.evaluate import evaluate
from multirater.evaluation.reliability import reliability
from multirater.io.detections import parse_detections


def coco_reference(gt: dict, dets: list[dict], max_dets: int = 100) -> dict[str, float]:
    """mAP, AP50, AP75, mAR from pycocotools at maxDets = max_dets (read at its index after sorting)."""
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(copy.deepcopy(dets)) if dets else COCO(), "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    m = list(ev.params.maxDets).index(max_dets)
    p = ev.eval["precision"][:, :, :, 0, m]
    r = ev.eval["recall"][:, :, 0, m]

    def mean(s):
        return float(np.mean(s[s > -1])) if (s > -1).any() else float("nan")

    return {"mAP": mean(p), "AP50": mean(p[0]), "AP75": mean(p[5]), "mAR": mean(r)}


def random_scene(seed: int, n_images: int = 6, n_categories: int = 3, quantize: int | None = None):
    """GT (ids out of order, an image without anything, a category without GT) and jittered detections."""
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in rng.permutation(np.arange(1, n_images + 1) * 3)]
    images = [{"id": i, "width": 120, "height": 100} for i in ids]
    anns, dets = [], []

    def score():
        s = float(rng.random())
        return round(s * quantize) / quantize if quantize else s

    for img in ids:
        if img == 3:
            continue  # an image with neither GT nor detections
        for _ in range(int(rng.integers(0, 9))):
            box = [float(rng.uniform(0, 80)), float(rng.uniform(0, 80)), float(rng.uniform(3, 25)),
                   float(rng.uniform(3, 25))]
            cat = int(rng.integers(1, n_categories))  # the last category never has GT
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
            for _ in range(int(rng.integers(0, 3))):
                jit = np.array(box) + rng.normal(0, 1.5, 4)
                jit[2:] = np.abs(jit[2:])
                dets.append({"image_id": img, "category_id": cat, "bbox": jit.tolist(), "score": score()})
        for _ in range(int(rng.integers(0, 5))):
            box = [float(rng.uniform(0, 80)), float(rng.uniform(0, 80)), float(rng.uniform(3, 25)),
                   float(rng.uniform(3, 25))]
            dets.append({"image_id": img, "category_id": int(rng.integers(1, n_categories + 1)), "bbox": box,
                         "score": score()})
    dets = [dets[i] for i in rng.permutation(len(dets))]
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_categories + 1)]}
    return gt, dets


def values(result: dict) -> dict:
    return {(r["metric"], r["iou"]): r for r in result["metrics"]}


@pytest.mark.parametrize("seed,quantize,max_dets", [(0, None, 100), (1, 10, 100), (2, None, 3), (3, 5, 2),
                                                    (4, None, 100), (5, 20, 5)])
def test_ap_and_ar_equal_pycocotools(seed, quantize, max_dets):
    gt, dets = random_scene(seed, quantize=quantize)
    result = evaluate(gt, parse_detections(dets), max_dets=max_dets, bootstrap=0)
    ref = coco_reference(gt, dets, max_dets)
    got = values(result)
    for name in ("mAP", "AP50", "AP75", "mAR"):
        assert got[(name, None)]["value"] == pytest.approx(ref[name], abs=1e-12), name
    assert result["n_images"] == len(gt["images"])
    assert result["n_gt"] == len(gt["annotations"]) and result["n_detections"] == len(dets)


def test_no_detections_and_no_ground_truth():
    gt, dets = random_scene(0)
    empty = evaluate(gt, parse_detections([]), bootstrap=0)
    assert values(empty)[("mAP", None)]["value"] == 0.0
    assert values(empty)[("D-ECE", 0.5)]["value"] is None  # no detection: undefined
    no_gt = {**gt, "annotations": []}
    got = values(evaluate(no_gt, parse_detections(dets), bootstrap=0))
    assert got[("mAP", None)]["value"] is None  # pycocotools: -1, nothing to evaluate
    assert got[("D-ECE", 0.5)]["value"] == pytest.approx(np.mean([d["score"] for d in dets]))


def netcal_dece(conf, matched, bins, features=None):
    """D-ECE as netcal's ECE(bins, detection=True) defines it: inputs clipped to [eps, 1 - eps], edges
    linspace(0, 1, bins + 1), np.digitize into half-open bins with the last one closed, joint bins over
    all dimensions, n_b / N weighting of |precision - confidence|."""
    eps = np.finfo(np.float64).eps
    x = np.column_stack([conf] + ([] if features is None else [features[:, k] for k in range(features.shape[1])]))
    x = np.clip(x, eps, 1 - eps)
    edges = np.linspace(0.0, 1.0, bins + 1)
    cells: dict[tuple, list[int]] = {}
    for i, row in enumerate(x):
        key = tuple(min(int(np.digitize(v, edges, right=False)) - 1, bins - 1) for v in row)
        cells.setdefault(key, []).append(i)
    total = 0.0
    for members in cells.values():
        total += len(members) / len(conf) * abs(np.mean(matched[members]) - np.mean(x[members, 0]))
    return total


def test_dece_hand_computed():
    # Two bins: [0, .5) holds .2 and .4 (one hit): |.5 - .3| * 2/4; [.5, 1] holds .6 and .9 (one hit):
    # |.5 - .75| * 2/4. Total .225.
    conf = np.array([0.2, 0.4, 0.6, 0.9])
    hit = np.array([0, 1, 1, 0])
    assert dece(conf, hit, bins=2) == pytest.approx(0.225)
    rel = reliability(conf, hit, bins=2)
    assert rel[0] == {"lower": 0.0, "upper": 0.5, "count": 2, "confidence": pytest.approx(0.3), "precision": 0.5}
    assert rel[1]["count"] == 2 and rel[1]["confidence"] == pytest.approx(0.75)
    # A score exactly on an edge goes to the upper bin; 1.0 to the last bin; empty bins are skipped.
    # [0.5, 1.0] both in the last of 2 bins: |1 - .75| = .25
    assert dece(np.array([0.5, 1.0]), np.array([1, 1]), bins=2) == pytest.approx(0.25)
    # with 4 bins .5 opens bin [.5, .75) and 1.0 closes [.75, 1]: |1 - .5|/2 + |1 - 1|/2
    assert dece(np.array([0.5, 1.0]), np.array([1, 1]), bins=4) == pytest.approx(0.25)
    assert dece(np.array([0.5, 1.0]), np.array([1, 0]), bins=4) == pytest.approx(0.25 + 0.5)
    assert dece(np.array([0.0]), np.array([0]), bins=10) == 0.0


@pytest.mark.parametrize("bins", [1, 3, 7, 10, 15])
def test_dece_equals_netcal_binning(bins):
    rng = np.random.default_rng(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    conf = np.r_[rng.random(200), edges, edges, [0.0, 1.0, 0.3, 0.7]]  # edges, 0 and 1 included
    hit = (rng.random(len(conf)) < conf).astype(float)
    assert dece(conf, hit, bins) == pytest.approx(netcal_dece(conf, hit, bins), abs=1e-12)
    features = np.column_stack([rng.random(len(conf)), np.r_[edges, rng.random(len(conf) - bins - 1)]])
    assert dece(conf, hit, bins, features) == pytest.approx(netcal_dece(conf, hit, bins, features), abs=1e-12)


def test_dece_and_reliability_from_evaluate_hand_computed():
    # One image, two GT boxes; detections: a hit (0.9), a miss (0.8, far away), a hit only at IoU .5 (0.3).
    gt = {"images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "area": 100}],
          "categories": [{"id": 1, "name": "o"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [80, 80, 10, 10], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [52, 50, 10, 10], "score": 0.3}]  # IoU 80/120
    result = evaluate(gt, parse_detections(dets), iou_thresholds=(0.5, 0.75), bins=2, bootstrap=0)
    got = values(result)
    # IoU .5: bin [0, .5) {.3 hit}: |1 - .3| * 1/3; bin [.5, 1] {.9 hit, .8 miss}: |.5 - .85| * 2/3
    assert got[("D-ECE", 0.5)]["value"] == pytest.approx(0.7 / 3 + 0.35 * 2 / 3)
    # IoU .75: the .3 detection misses: |0 - .3| * 1/3 + .35 * 2/3
    assert got[("D-ECE", 0.75)]["value"] == pytest.approx(0.3 / 3 + 0.35 * 2 / 3)
    assert result["reliability"]["0.5"][0] == {"lower": 0.0, "upper": 0.5, "count": 1,
                                              "confidence": pytest.approx(0.3), "precision": 1.0}
    assert result["settings"]["matching"] == "greedy" and result["settings"]["bins"] == 2
    assert "values" not in got[("mAP", None)]


def test_hungarian_matching_changes_the_flags_of_dece():
    # Greedy: the 0.9 detection takes GT a (IoU .7 vs .6 with b) and the 0.8 detection finds nothing.
    # Hungarian: 0.9 -> b, 0.8 -> a, both matched.
    gt = {"images": [{"id": 1, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [4, 0, 10, 10], "area": 100}],
          "categories": [{"id": 1, "name": "o"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [1.5, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [-2.5, 0, 10, 10], "score": 0.8}]
    greedy = values(evaluate(gt, parse_detections(dets), iou_thresholds=(0.5,), bins=1, bootstrap=0))
    hung = values(evaluate(gt, parse_detections(dets), iou_thresholds=(0.5,), bins=1, bootstrap=0,
                           matching="hungarian"))
    assert greedy[("D-ECE", 0.5)]["value"] == pytest.approx(abs(0.5 - 0.85))
    assert hung[("D-ECE", 0.5)]["value"] == pytest.approx(abs(1.0 - 0.85))
    assert greedy[("mAP", None)]["value"] == hung[("mAP", None)]["value"]  # mAP always uses COCO's rule


def coco_flags(gt: dict, dets: list[dict], threshold: float) -> np.ndarray:
    """pycocotools' matched flag of every detection (in file order) at one IoU threshold."""
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(copy.deepcopy(dets)), "bbox")
        ev.params.iouThrs = np.array([threshold])
        ev.params.maxDets = [len(dets)]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
    flags = np.zeros(len(dets))
    for e in ev.evalImgs:
        if e is not None:
            for dt_id, gt_id in zip(e["dtIds"], e["dtMatches"][0]):
                flags[dt_id - 1] = gt_id > 0
    return flags


def test_dece_on_evaluate_equals_netcal_definition_with_coco_flags():
    gt, dets = random_scene(2, n_categories=2)
    det = parse_detections(dets)
    for threshold in (0.5, 0.75):
        hit = coco_flags(gt, dets, threshold)
        flat = evaluate(gt, det, iou_thresholds=(threshold,), bins=4, bootstrap=0)
        assert values(flat)[("D-ECE", threshold)]["value"] == pytest.approx(
            netcal_dece(det.scores, hit, 4), abs=1e-12)
    # Multivariate: joint bins over confidence, relative centre x and relative width.
    width = {im["id"]: im["width"] for im in gt["images"]}
    cx = np.array([(b[0] + b[2] / 2) / width[i] for b, i in zip(det.boxes, det.image_id)])
    w = np.array([b[2] / width[i] for b, i in zip(det.boxes, det.image_id)])
    features = np.clip(np.column_stack([cx, w]), 0, 1)
    result = evaluate(gt, det, iou_thresholds=(0.5,), bins=4, bootstrap=0, dece_features=("cx", "w"))
    assert values(result)[("D-ECE", 0.5)]["value"] == pytest.approx(
        netcal_dece(det.scores, coco_flags(gt, dets, 0.5), 4, features), abs=1e-12)
    assert result["settings"]["dece_features"] == ["cx", "w"]


def test_bad_input_names_the_file_and_item():
    gt, dets = random_scene(0)
    outside = dets + [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(UserError) as err:
        evaluate(gt, parse_detections(outside), gt_name="gt.json", pred_name="pred.json")
    assert err.value.file == "pred.json" and err.value.item == f"detection {len(dets)}"
    assert "999" in err.value.problem and "gt.json" in err.value.problem
    unknown = [{"image_id": gt["images"][0]["id"], "category_id": 42, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(UserError, match="category_id 42"):
        evaluate(gt, parse_detections(unknown), pred_name="pred.json")
    bad_gt = copy.deepcopy(gt)
    bad_gt["annotations"][0]["image_id"] = 12345
    with pytest.raises(UserError) as err:
        evaluate(bad_gt, parse_detections(dets), gt_name="gt.json")
    assert err.value.file == "gt.json" and err.value.item == "annotations[0]"
    # The command line names the flag; the library names the setting.
    with pytest.raises(UserError, match="--matching"):
        check_evaluate_flags(evaluate_args(matching="best"))
    with pytest.raises(UserError, match="^matching must be one of greedy, hungarian, got 'best'$"):
        evaluate(gt, parse_detections(dets), matching="best")


def evaluate_args(**flags):
    """``multirater evaluate``'s parsed arguments, with some values replaced."""
    args = build_parser().parse_args(["evaluate", "--gt", "gt.json", "--pred", "pred.json", "--out", "out.json"])
    for key, value in flags.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("setting,flag,value", [
    ("iou_thresholds", "--iou", (0.5, 1.5)), ("iou_thresholds", "--iou", ()), ("bins", "--bins", 0),
    ("max_dets", "--max-dets", 0), ("bootstrap", "--bootstrap", -1), ("dece_features", "--dece-features", ("z",)),
    ("dece_reference_draws", "--dece-reference-draws", -1),
])
def test_a_bad_setting_is_named_by_the_library_and_its_flag_by_the_command_line(setting, flag, value):
    gt, dets = random_scene(0)
    with pytest.raises(UserError) as err:
        evaluate(gt, parse_detections(dets), **{setting: value})
    assert err.value.problem.startswith(f"{setting} ") and "--" not in err.value.problem
    arg = {"iou_thresholds": "iou", "max_dets": "max_dets", "dece_features": "dece_features"}.get(setting, setting)
    with pytest.raises(UserError) as err:
        check_evaluate_flags(evaluate_args(**{arg: list(value) if isinstance(value, tuple) else value}))
    assert err.value.problem.startswith(f"{flag} ")


def test_dece_features_need_image_sizes_named_by_setting():
    gt, dets = random_scene(0)
    del gt["images"][0]["width"]
    with pytest.raises(UserError) as err:
        evaluate(gt, parse_detections(dets), dece_features=("cx",), gt_name="gt.json")
    assert err.value.file == "gt.json" and "dece_features" in err.value.problem and "--" not in err.value.problem


@pytest.mark.parametrize("identity", [
    {"strategy": "rs-rater1", "config_id": "0a1b2c3d"},
    {"kind": "rse", "size": 2, "members": [{"strategy": "rs-rater1", "config_id": "0a1b2c3d", "source": "rater1"},
                                           {"strategy": "rs-rater2", "config_id": "4e5f6a7b", "source": "rater2"}]},
])
def test_evaluate_copies_the_identity_of_the_detections(identity):
    gt, dets = random_scene(1)
    data = {"format": "multirater-detections", "image_ids": sorted(im["id"] for im in gt["images"]),
            "detections": dets, "meta": {"identity": copy.deepcopy(identity), "strategy": "ls"}}
    with_identity = evaluate(gt, parse_detections(data), bootstrap=3)
    assert with_identity["identity"] == identity
    without = evaluate(gt, parse_detections({**data, "meta": {"strategy": "ls"}}), bootstrap=3)
    assert "identity" not in without
    # The identity is the only difference: every metric is the same.
    assert {k: v for k, v in with_identity.items() if k != "identity"} == without


def test_identity_that_is_not_an_object_names_the_item():
    gt, dets = random_scene(1)
    data = {"format": "multirater-detections", "detections": dets, "meta": {"identity": "ls/0a1b2c3d"}}
    with pytest.raises(UserError) as err:
        evaluate(gt, parse_detections(data), pred_name="pred.json")
    assert err.value.file == "pred.json" and err.value.item == "meta.identity"
