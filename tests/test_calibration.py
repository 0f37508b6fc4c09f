"""Post-hoc calibration: targets on a hand-made case, fits against independent references (scipy's direct
minimisation of the loss, hand-computed pool-adjacent-violators), and the statistical behaviour on data
calibrated by construction and on deliberately overconfident data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from multirater.calibration.calibrator_files import read_calibrator, write_calibrator
from multirater.calibration.calibrators import L2_C, Calibrator, fit_calibrator, logit, sigmoid
from multirater.calibration.fitting import fit_on_validation, recalibrate
from multirater.calibration.image_sizes import dataset_image_sizes
from multirater.calibration.targets import hard_targets, resolve_reference, soft_targets
from multirater.core.errors import UserError
from multirater.data.dataset import load_dataset
from multirater.evaluation.dece import dece
from multirater.evaluation.evaluate import evaluate
from multirater.io.detections import Detections, parse_detections


# ------------------------------------------------------------------------------------------- a hand-made dataset

R1 = [[10, 10, 20, 20], [50, 50, 20, 20]]  # boxes A and B on image 1
R2 = [[11, 10, 20, 20]]  # A shifted by 1 px: IoU with A = 380 / 420
R3: list = []  # rater 3 labelled image 1 and saw nothing


def write_three_rater_dataset(root: Path) -> Path:
    """Image 1 (100 x 80 px) labelled by three raters (R1, R2, R3 above); image 2 by the consensus only."""
    (root / "images").mkdir(parents=True)
    images = [{"id": 1, "file_name": "a.png", "width": 100, "height": 80},
              {"id": 2, "file_name": "b.png", "width": 100, "height": 80}]
    for im in images:
        Image.fromarray(np.zeros((80, 100), dtype=np.uint8), mode="L").save(root / "images" / im["file_name"])
    cats = [{"id": 1, "name": "organoid"}, {"id": 2, "name": "debris"}]

    def coco(boxes, imgs):
        anns = [{"id": k + 1, "image_id": imgs[0]["id"], "category_id": 1, "bbox": b} for k, b in enumerate(boxes)]
        return {"images": imgs, "annotations": anns, "categories": cats}

    for name, boxes, imgs in (("r1", R1, images[:1]), ("r2", R2, images[:1]), ("r3", R3, images[:1]),
                              ("consensus", [[40, 40, 10, 10]], images[1:])):
        (root / f"{name}.json").write_text(json.dumps(coco(boxes, imgs)))
    manifest = root / "dataset.yaml"
    manifest.write_text(yaml.safe_dump({"images": "images", "consensus": "consensus.json",
                                        "raters": {"r1": "r1.json", "r2": "r2.json", "r3": "r3.json"}}))
    return manifest


def hand_detections(meta: dict | None = None) -> Detections:
    records = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},  # d0 on A
        {"image_id": 1, "category_id": 1, "bbox": [12, 10, 20, 20], "score": 0.8},  # d1: a duplicate of A
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.3},  # d2 on B
        {"image_id": 1, "category_id": 1, "bbox": [55, 50, 20, 20], "score": 0.95},  # d3: IoU 300 / 500 with B
        {"image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20], "score": 0.5},  # d4: no category-2 box
    ]
    return parse_detections({"image_ids": [1], "detections": records, "meta": meta or {}})


@pytest.fixture
def dataset(tmp_path):
    return load_dataset(write_three_rater_dataset(tmp_path / "data"))


def test_targets_by_hand_at_iou_half(dataset):
    dets = hand_detections()
    # greedy in descending score: d3 (0.95) takes r1's B before d2 (0.3); d0 takes A (r1) and A' (r2), so the
    # duplicate d1 finds both taken; r3 has no box, yet labelled the image: denominator 3.
    assert hard_targets(dets, dataset, "r1", 0.5, "val.json").tolist() == [1, 0, 0, 1, 0]
    assert hard_targets(dets, dataset, "r2", 0.5, "val.json").tolist() == [1, 0, 0, 0, 0]
    assert hard_targets(dets, dataset, "r3", 0.5, "val.json").tolist() == [0, 0, 0, 0, 0]
    assert soft_targets(dets, dataset, 0.5, "val.json") == pytest.approx([2 / 3, 0, 0, 1 / 3, 0], abs=1e-15)
    assert hard_targets(dets, dataset, "majority", 0.5, "val.json").tolist() == [1, 0, 0, 0, 0]


def test_targets_by_hand_at_iou_three_quarters(dataset):
    dets = hand_detections()
    # at 0.75, d3 (IoU 0.6) no longer reaches B, so d2 gets it; A' still matches d0 (IoU 380/420 = 0.905)
    assert hard_targets(dets, dataset, "r1", 0.75, "val.json").tolist() == [1, 0, 1, 0, 0]
    assert soft_targets(dets, dataset, 0.75, "val.json") == pytest.approx([2 / 3, 0, 1 / 3, 0, 0], abs=1e-15)


def test_target_errors_name_the_file_and_image(dataset):
    on_test = parse_detections({"image_ids": [2], "detections": [
        {"image_id": 2, "category_id": 1, "bbox": [40, 40, 10, 10], "score": 0.7}]})
    with pytest.raises(UserError, match=r"val.json: image 2 is labelled by none of the raters"):
        soft_targets(on_test, dataset, 0.5, "val.json")
    with pytest.raises(UserError, match=r"val.json: image 2 is not labelled by r1"):
        hard_targets(on_test, dataset, "r1", 0.5, "val.json")
    assert hard_targets(on_test, dataset, "consensus", 0.5, "val.json").tolist() == [1]
    with pytest.raises(UserError, match=r"unknown reference 'r9'"):
        hard_targets(on_test, dataset, "r9", 0.5, "val.json")
    with pytest.raises(UserError, match=r"iou: must lie in \(0, 1\]"):
        soft_targets(hand_detections(), dataset, 0.0, "val.json")


def test_default_reference_is_the_labels_the_model_was_validated_on(dataset):
    assert resolve_reference(hand_detections({"strategy": "rs-r2"}), dataset, None) == "r2"
    assert resolve_reference(hand_detections({"identity": {"strategy": "rs-r3", "config_id": "0123abcd"},
                                              "strategy": "rs-r2"}), dataset, "auto") == "r3"
    assert resolve_reference(hand_detections({"strategy": "ls"}), dataset, None) == "majority"
    ensemble = {"identity": {"kind": "rse", "size": 2, "members": []}}
    assert resolve_reference(hand_detections(ensemble), dataset, None) == "majority"
    assert resolve_reference(hand_detections({"strategy": "rs-r2"}), dataset, "r1") == "r1"


# ------------------------------------------------------------------------------ fits against independent references

def _scipy_logistic(design: np.ndarray, y: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """Direct minimisation of -sum[y log p + (1 - y) log(1 - p)] + ||w||^2 / (2 C) (intercept unpenalised)."""
    from scipy.optimize import minimize

    def loss(theta):
        w, b = (theta[:-1], theta[-1]) if fit_intercept else (theta, 0.0)
        z = design @ w + b
        # log(1 + exp(z)) - y z, written stably
        value = np.sum(np.logaddexp(0.0, z) - y * z) + w @ w / (2 * L2_C)
        r = 1.0 / (1.0 + np.exp(-z)) - y
        grad_w = design.T @ r + w / L2_C
        return value, np.append(grad_w, r.sum()) if fit_intercept else grad_w

    n = design.shape[1] + int(fit_intercept)
    res = minimize(loss, np.zeros(n), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    return res.x


HAND_SCORES = np.array([0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
HAND_SOFT = np.array([0.0, 1 / 3, 0.0, 2 / 3, 1 / 3, 1.0, 2 / 3, 1.0, 2 / 3, 1.0])


@pytest.mark.parametrize("method", ["logistic", "temperature"])
def test_logistic_fit_equals_direct_minimisation_of_the_weighted_log_loss(method):
    cal = fit_calibrator(method, HAND_SCORES, HAND_SOFT)
    x = np.log(HAND_SCORES / (1 - HAND_SCORES))[:, None]
    ref = _scipy_logistic(x, HAND_SOFT, fit_intercept=method == "logistic")
    assert cal.coefficients[0] == pytest.approx(ref[0], abs=1e-6)
    assert cal.intercept == pytest.approx(ref[1] if method == "logistic" else 0.0, abs=1e-6)
    expected = 1 / (1 + np.exp(-(ref[0] * x[:, 0] + (ref[1] if method == "logistic" else 0.0))))
    assert cal.predict(HAND_SCORES) == pytest.approx(expected, abs=1e-7)


def test_detection_aware_fit_equals_direct_minimisation():
    rng = np.random.default_rng(5)
    scores = rng.uniform(0.01, 0.99, 60)
    boxes = rng.uniform(0, 1, (60, 4))
    y = rng.integers(0, 4, 60) / 3  # soft targets of three raters
    cal = fit_calibrator("detection-aware", scores, y, boxes)
    design = np.column_stack([np.log(scores / (1 - scores)), boxes])
    ref = _scipy_logistic(design, y, fit_intercept=True)
    assert np.asarray(cal.coefficients) == pytest.approx(ref[:-1], abs=1e-6)
    assert cal.intercept == pytest.approx(ref[-1], abs=1e-6)


def test_soft_target_fit_equals_fit_to_every_raters_hard_labels_stacked():
    from sklearn.linear_model import LogisticRegression

    # three raters: the soft target 2/3 is two hard 1s and one hard 0, one row per rater
    hard = np.array([[1 if k < round(3 * t) else 0 for k in range(3)] for t in HAND_SOFT])
    x = np.repeat(np.log(HAND_SCORES / (1 - HAND_SCORES)), 3)[:, None]
    # three copies triple the loss, so the same penalty needs C / 3
    ref = LogisticRegression(C=L2_C / 3, tol=1e-12, max_iter=10_000).fit(x, hard.ravel())
    cal = fit_calibrator("logistic", HAND_SCORES, HAND_SOFT)
    assert cal.coefficients[0] == pytest.approx(ref.coef_[0, 0], abs=1e-6)
    assert cal.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_isotonic_equals_hand_computed_pool_adjacent_violators():
    # hard targets 0 1 0 1 1: the violating pair (1, 0) pools to 0.5
    cal = fit_calibrator("isotonic", np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([0.0, 1.0, 0.0, 1.0, 1.0]))
    assert cal.predict(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx([0, 0.5, 0.5, 1, 1], abs=1e-15)
    # linear between breakpoints, clipped beyond them
    assert cal.predict(np.array([0.15, 0.25, 0.35, 0.0, 1.0])) == pytest.approx([0.25, 0.5, 0.75, 0, 1], abs=1e-15)
    # soft targets: 0.6 0.2 pool to 0.4; the tied scores 0.6 average to (0.9 + 0.3) / 2 = 0.6 with weight 2,
    # which violates 0.7 before it: that block pools to (0.7 + 0.9 + 0.3) / 3
    cal = fit_calibrator("isotonic", np.array([0.1, 0.2, 0.3, 0.6, 0.6]), np.array([0.6, 0.2, 0.7, 0.9, 0.3]))
    pooled = 1.9 / 3
    assert cal.predict(np.array([0.1, 0.2, 0.3, 0.6, 0.25])) == pytest.approx(
        [0.4, 0.4, pooled, pooled, (0.4 + pooled) / 2], abs=1e-12)


def test_calibrator_file_round_trips_bitwise(tmp_path):
    rng = np.random.default_rng(1)
    scores, y, boxes = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200), rng.uniform(0, 1, (200, 4))
    for method in ("logistic", "temperature", "isotonic", "detection-aware"):
        cal = fit_calibrator(method, scores, y, boxes, fitted={"target": "soft"})
        write_calibrator(tmp_path / f"{method}.json", cal)
        back = read_calibrator(tmp_path / f"{method}.json")
        assert back == cal
        assert np.array_equal(back.predict(scores, boxes), cal.predict(scores, boxes))
        assert np.all((cal.predict(scores, boxes) >= 0) & (cal.predict(scores, boxes) <= 1))


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d.update(format="x"), "not a calibrator file"),
    (lambda d: d.update(method="spline"), "method: unknown method 'spline'"),
    (lambda d: d.update(coefficients=[1.0, "a"]), "coefficients: must be a non-empty list of finite numbers"),
    (lambda d: d.update(coefficients=[1.0, 2.0]), "coefficients: needs 1 numbers"),
    (lambda d: d.pop("intercept"), "intercept: must be a finite number"),
    (lambda d: d.update(features=["logit", "cx"]), "features: must be ['logit']"),
])
def test_bad_calibrator_files_name_the_file_and_key(tmp_path, edit, needle):
    path = tmp_path / "cal.json"
    write_calibrator(path, fit_calibrator("logistic", HAND_SCORES, HAND_SOFT))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as info:
        read_calibrator(path)
    assert str(info.value).startswith(f"{path}: ") and needle in str(info.value)


def test_bad_isotonic_breakpoints_are_refused(tmp_path):
    path = tmp_path / "iso.json"
    write_calibrator(path, fit_calibrator("isotonic", HAND_SCORES, HAND_SOFT))
    data = json.loads(path.read_text())
    data["y"] = data["y"][::-1]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="y: must be non-decreasing"):
        read_calibrator(path)


def test_a_logistic_fit_needs_both_outcomes():
    with pytest.raises(UserError, match="every target is 0"):
        fit_calibrator("logistic", HAND_SCORES, np.zeros(10), name="val.json")
    with pytest.raises(UserError, match="val.json: no detections"):
        fit_calibrator("isotonic", np.zeros(0), np.zeros(0), name="val.json")


def test_logit_and_sigmoid_are_finite_at_the_ends():
    assert np.all(np.isfinite(logit(np.array([0.0, 1.0]))))
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


# -------------------------------------------------------------------------------------- statistical behaviour

def _draw(rng, n: int, truth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores ~ U(0, 1), boxes ~ U(0, 1)^4 and outcomes ~ Bernoulli(truth(score))."""
    scores = rng.uniform(0, 1, n)
    return scores, rng.uniform(0, 1, (n, 4)), (rng.uniform(0, 1, n) < truth(scores)).astype(np.float64)


def _identity(s):
    return s


def _cubed(s):  # too high everywhere: E[s - s^3] = 1/4
    return s**3


def _too_extreme(s):  # too far from 1/2 on both sides: temperature 3
    return 1 / (1 + np.exp(-np.log(s / (1 - s)) / 3))


@pytest.mark.parametrize("method", ["logistic", "isotonic", "detection-aware"])
def test_calibrated_data_stays_calibrated(method):
    rng = np.random.default_rng(11)
    fit = _draw(rng, 20_000, _identity)
    scores, boxes, outcome = _draw(rng, 20_000, _identity)
    cal = fit_calibrator(method, fit[0], fit[2], fit[1])
    before = dece(scores, outcome)
    after = dece(cal.predict(scores, boxes), outcome)
    # sampling noise: each of the 10 bins holds ~2000 detections, so its precision is off by up to
    # sqrt(1/4 / 2000) = 0.011 (one sd) from its confidence, calibrated or not
    assert before < 0.02 and after < 0.02 and abs(after - before) < 0.015, (before, after)


@pytest.mark.parametrize("truth, methods", [(_cubed, ["logistic", "isotonic", "detection-aware"]),
                                            (_too_extreme, ["logistic", "temperature", "isotonic",
                                                            "detection-aware"])])
def test_overconfident_data_gets_calibrated(truth, methods):
    rng = np.random.default_rng(12)
    fit = _draw(rng, 20_000, truth)
    scores, boxes, outcome = _draw(rng, 20_000, truth)
    before = dece(scores, outcome)
    assert before > 0.1
    for method in methods:
        cal = fit_calibrator(method, fit[0], fit[2], fit[1])
        after = dece(cal.predict(scores, boxes), outcome)
        assert after < 0.03, (method, before, after)
        if method != "detection-aware":  # box features may reorder; the monotone maps may only tie
            order = np.argsort(scores)
            assert np.all(np.diff(cal.predict(scores)[order]) >= 0)


def _ap_case(rng) -> tuple[dict, Detections]:
    """40 images of 200 x 200 px with 3 objects each; 6 detections per image, on an object with prob. s^3."""
    images, anns, dets = [], [], []
    for i in range(1, 41):
        images.append({"id": i, "file_name": f"{i}.png", "width": 200, "height": 200})
        for k in range(3):
            anns.append({"id": 10 * i + k, "image_id": i, "category_id": 1, "bbox": [60.0 * k, 10.0, 40.0, 40.0]})
        for j in range(6):
            s = float(rng.uniform(0, 1))
            hit = rng.uniform() < s**3
            box = [60.0 * (j % 3) + 1, 11.0, 40.0, 40.0] if hit else [60.0 * (j % 3), 120.0, 40.0, 40.0]
            dets.append({"image_id": i, "category_id": 1, "bbox": box, "score": s})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "organoid"}]}
    return gt, parse_detections({"image_ids": list(range(1, 41)), "detections": dets})


@pytest.mark.parametrize("method", ["logistic", "temperature"])
def test_strictly_monotone_calibration_leaves_ap_unchanged(method):
    gt, dets = _ap_case(np.random.default_rng(3))
    cal = fit_calibrator(method, dets.scores, (np.random.default_rng(4).uniform(size=len(dets)) < dets.scores**3))
    calibrated = recalibrate(dets, cal, None, "test.json", "cal.json")
    raw = {(m["metric"], m["iou"]): m["value"] for m in evaluate(gt, dets, bootstrap=0)["metrics"]}
    new = {(m["metric"], m["iou"]): m["value"] for m in evaluate(gt, calibrated, bootstrap=0)["metrics"]}
    for key in (("mAP", None), ("AP50", None), ("AP75", None)):
        assert new[key] == pytest.approx(raw[key], abs=1e-12)
    if method == "logistic":  # a temperature cannot undo the shift of s^3
        assert new[("D-ECE", 0.5)] < raw[("D-ECE", 0.5)]


# ----------------------------------------------------------------------------------------- fit and apply

def test_fit_on_validation_and_recalibrate_record_what_was_done(dataset):
    dets = hand_detections({"strategy": "rs-r1", "identity": {"strategy": "rs-r1", "config_id": "0123abcd"}})
    cal = fit_on_validation(dets, dataset, "isotonic", "hard", 0.5, None, "val.json")
    assert cal.fitted["reference"] == "r1" and cal.fitted["target"] == "hard" and cal.fitted["n_detections"] == 5
    assert cal.fitted["mean_target"] == pytest.approx(2 / 5)
    out = recalibrate(dets, cal, None, "test.json", "cal.json")
    assert out.meta["calibration"]["method"] == "isotonic" and out.meta["calibration"]["fitted_on"] == "val.json"
    assert out.meta["identity"] == dets.meta["identity"] and "calibration" not in dets.meta
    assert np.array_equal(out.boxes, dets.boxes) and np.all((out.scores >= 0) & (out.scores <= 1))
    with pytest.raises(UserError, match="test.json: already calibrated"):
        recalibrate(out, cal, None, "test.json", "cal.json")


def test_detection_aware_uses_sizes_relative_to_the_image(dataset):
    dets = hand_detections()
    cal = fit_on_validation(dets, dataset, "detection-aware", "soft", 0.5, None, "val.json")
    sizes = dataset_image_sizes(dataset)
    assert sizes[1] == (100.0, 80.0)
    expected_features = np.array([[0.2, 0.25, 0.2, 0.25], [0.22, 0.25, 0.2, 0.25], [0.6, 0.75, 0.2, 0.25],
                                  [0.65, 0.75, 0.2, 0.25], [0.2, 0.25, 0.2, 0.25]])
    out = recalibrate(dets, cal, sizes, "val.json", "cal.json")
    assert out.scores == pytest.approx(cal.predict(dets.scores, expected_features), abs=1e-15)
    with pytest.raises(UserError, match="cal.json: a detection-aware calibrator needs the images' sizes"):
        recalibrate(dets, cal, None, "val.json", "cal.json")
    with pytest.raises(UserError, match="val.json: the size of image 1 is unknown"):
        recalibrate(dets, cal, {2: (10.0, 10.0)}, "val.json", "cal.json")


def test_calibrator_dataclass_predicts_without_sklearn():
    cal = Calibrator("logistic", coefficients=(2.0,), intercept=-1.0)
    s = np.array([0.25, 0.5, 0.75])
    assert cal.predict(s) == pytest.approx(1 / (1 + np.exp(-(2 * np.log(s / (1 - s)) - 1))), abs=1e-15)
