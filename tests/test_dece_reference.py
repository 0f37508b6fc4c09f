"""The finite-sample D-ECE reference: a calibrated-by-construction detector falls inside its band about 95 % of
the time, an overconfident one far above it; seeded; hand-checkable small cases; and its place in evaluate's
output and on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.evaluation.dece import dece
from multirater.evaluation.dece_reference import REFERENCE_STREAM, dece_reference, reference_dece_draws
from multirater.evaluation.evaluate import evaluate
from multirater.io.detections import parse_detections


def inside(value: float, band: dict) -> bool:
    return band["p2.5"] <= value <= band["p97.5"]


def test_calibrated_detections_fall_inside_the_band_about_95_percent_of_the_time():
    # Each trial: new scores and outcomes drawn as Bernoulli(score), so the measured D-ECE is one more draw
    # from the reference's own distribution and lands in its central 95 % range with probability ~0.95.
    hits = 0
    trials = 200
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        score = rng.random(150)
        matched = (rng.random(150) < score).astype(float)
        hits += inside(dece(score, matched, 10), dece_reference(score, 10, draws=200, seed=trial))
    assert 0.88 <= hits / trials <= 0.99


def test_calibrated_detections_with_box_features_fall_inside_the_band():
    hits = 0
    trials = 100
    for trial in range(trials):
        rng = np.random.default_rng(5000 + trial)
        score, features = rng.random(300), rng.random((300, 2))
        matched = (rng.random(300) < score).astype(float)
        hits += inside(dece(score, matched, 4, features), dece_reference(score, 4, features, 200, trial))
    assert 0.88 <= hits / trials <= 0.99


def test_overconfident_detections_lie_far_above_the_band():
    # P(matched) = score^3: the expected D-ECE is about E[score - score^3] = 1/4 for uniform scores.
    for trial in range(50):
        rng = np.random.default_rng(2000 + trial)
        score = rng.random(500)
        matched = (rng.random(500) < score**3).astype(float)
        band = dece_reference(score, 10, draws=200, seed=trial)
        assert dece(score, matched, 10) > 2 * band["p97.5"]


def test_every_draw_is_the_dece_of_documented_bernoulli_outcomes():
    rng = np.random.default_rng(7)
    score, features = rng.random(40), rng.random((40, 1))
    uniforms = np.random.default_rng([REFERENCE_STREAM, 11]).random((30, 40))
    expected = [dece(score, (u < score).astype(float), 5, features) for u in uniforms]
    assert reference_dece_draws(score, 5, features, draws=30, seed=11).tolist() == expected
    # Drawing in chunks of any size continues the same stream.
    for chunk in (1, 40, 41, 119, 10**6):
        assert reference_dece_draws(score, 5, features, 30, 11, chunk_elements=chunk).tolist() == expected


def test_the_same_seed_gives_the_same_band():
    score = np.random.default_rng(3).random(80)
    assert dece_reference(score, 10, seed=4) == dece_reference(score, 10, seed=4)
    assert dece_reference(score, 10, seed=4) != dece_reference(score, 10, seed=5)


@pytest.mark.parametrize("score", [[1.0, 1.0, 1.0], [0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
def test_certain_scores_give_the_band_zero(score):
    # A score of 1 is always matched and 0 never: every draw has D-ECE 0.
    band = dece_reference(np.array(score), 10, draws=50, seed=0)
    assert band == {"draws": 50, "seed": 0, "mean": 0.0, "p2.5": 0.0, "p97.5": 0.0}


def test_hand_computed_half_scores():
    # One detection at 0.5, one bin: D-ECE = |matched - 0.5| = 0.5 whatever the outcome.
    assert dece_reference(np.array([0.5]), 1, draws=20) == {"draws": 20, "seed": 0, "mean": 0.5, "p2.5": 0.5,
                                                            "p97.5": 0.5}
    # Two at 0.5 in one bin: D-ECE = |m1 + m2 - 1| / 2, i.e. 0 or 1/2 with probability 1/2 each.
    values = reference_dece_draws(np.array([0.5, 0.5]), 1, draws=4000, seed=1)
    assert set(values.tolist()) == {0.0, 0.5}
    assert values.mean() == pytest.approx(0.25, abs=0.02)  # 4 standard errors


def test_no_detection_gives_no_numbers():
    assert dece_reference(np.zeros(0), 10, draws=5) == {"draws": 5, "seed": 0, "mean": None, "p2.5": None,
                                                        "p97.5": None}


def calibrated_scene(seed: int, n: int = 120) -> tuple[dict, list[dict], np.ndarray]:
    """Non-overlapping detections on a grid of one image; a ground-truth box sits exactly on a detection iff
    its outcome, drawn as Bernoulli(score), is 1: the detection is matched iff its outcome is 1."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    outcome = rng.random(n) < score
    dets, anns = [], []
    for i in range(n):
        box = [float(20 * (i % 40)), float(20 * (i // 40)), 10.0, 10.0]
        dets.append({"image_id": 1, "category_id": 1, "bbox": box, "score": float(score[i])})
        if outcome[i]:
            anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 100.0})
    gt = {"images": [{"id": 1, "width": 800, "height": 800}], "annotations": anns,
          "categories": [{"id": 1, "name": "o"}]}
    return gt, dets, outcome


def test_evaluate_reports_the_reference_of_calibrated_detections():
    hits = 0
    trials = 200
    for trial in range(trials):
        gt, dets, outcome = calibrated_scene(trial)
        result = evaluate(gt, parse_detections(dets), iou_thresholds=(0.5, 0.75), bins=10, bootstrap=0,
                          seed=trial)
        scores = np.array([d["score"] for d in dets])
        measured = {r["iou"]: r["value"] for r in result["metrics"] if r["metric"] == "D-ECE"}
        assert measured[0.5] == measured[0.75] == pytest.approx(dece(scores, outcome.astype(float), 10))
        band = result["dece_reference"]
        assert band["draws"] == 200 and band["seed"] == trial
        hits += inside(measured[0.5], band)
    assert 0.88 <= hits / trials <= 0.99


def test_evaluate_adds_the_reference_and_changes_nothing_else():
    gt, dets, _ = calibrated_scene(0, n=30)
    with_reference = evaluate(gt, parse_detections(dets), bootstrap=5, seed=3)
    without = evaluate(gt, parse_detections(dets), bootstrap=5, seed=3, dece_reference_draws=0)
    assert "dece_reference" not in without
    assert {k: v for k, v in with_reference.items() if k != "dece_reference"} == without
    features = evaluate(gt, parse_detections(dets), bootstrap=0, dece_features=("cx", "w"), dece_reference_draws=7)
    assert features["dece_reference"]["draws"] == 7
    with pytest.raises(UserError, match="^dece_reference_draws must be 0 or more, got -1$"):
        evaluate(gt, parse_detections(dets), dece_reference_draws=-1)


def test_the_command_line_writes_the_reference(tmp_path, capsys):
    gt, dets, _ = calibrated_scene(1, n=20)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps({"format": "multirater-detections", "detections": dets}))
    out = tmp_path / "out.json"
    args = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--out", str(out),
            "--bootstrap", "0", "--seed", "9"]
    assert main([*args, "--dece-reference-draws", "50"]) == 0
    assert json.loads(out.read_text())["dece_reference"]["draws"] == 50
    assert json.loads(out.read_text())["dece_reference"]["seed"] == 9
    assert main([*args, "--dece-reference-draws", "0"]) == 0
    assert "dece_reference" not in json.loads(out.read_text())
    out.unlink()
    assert main([*args, "--dece-reference-draws", "-1"]) == 2
    assert "--dece-reference-draws must be 0 or more" in capsys.readouterr().err
    assert not out.exists()
