"""Per-image expected counts: hand-computed cases and a brute-force Poisson-binomial reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from multirater.ensembles.counting import image_counts, poisson_binomial_moments
from multirater.io.detections import parse_detections
from multirater.core.errors import UserError


def _brute_force_moments(p: list[float]) -> tuple[float, float]:
    """Mean and std of the number of successes, by enumerating every outcome and its probability."""
    mean = second = 0.0
    for outcome in itertools.product([0, 1], repeat=len(p)):
        prob = math.prod(pi if o else 1.0 - pi for pi, o in zip(p, outcome))
        k = sum(outcome)
        mean += prob * k
        second += prob * k * k
    return mean, math.sqrt(second - mean**2)


@pytest.mark.parametrize("p", [[0.9], [0.5, 0.5], [0.9, 0.2, 0.6], [0.05, 0.99, 0.3, 0.7, 0.5], [1.0, 0.0, 1.0]])
def test_moments_match_brute_force_enumeration(p):
    mean, std = poisson_binomial_moments(np.array(p))
    ref_mean, ref_std = _brute_force_moments(p)
    assert mean == pytest.approx(ref_mean, abs=1e-12)
    assert std == pytest.approx(ref_std, abs=1e-9)


def test_moments_of_no_detections_are_zero():
    assert poisson_binomial_moments(np.zeros(0)) == (0.0, 0.0)


def _dets(records, image_ids, meta=None):
    return parse_detections({"format": "multirater-detections", "image_ids": image_ids, "detections": records,
                             "meta": meta or {}})


def _det(image_id, score, **extra):
    return {"image_id": image_id, "category_id": 1, "bbox": [0, 0, 5, 5], "score": score, **extra}


def test_counts_per_image_hand_computed():
    # image 3: scores 0.9, 0.5, 0.2 -> 2 at >= 0.5, expected 1.6, var .09 + .25 + .16 = .5
    # image 7: score 0.4 -> 0 at >= 0.5, expected 0.4, var .24; image 5: nothing
    dets = _dets([_det(7, 0.4), _det(3, 0.9), _det(3, 0.2), _det(3, 0.5)], [3, 5, 7],
                 {"file_names": {"3": "a.png", "5": "b.tif", "7": "c.jpg"}})
    rows = image_counts(dets)
    assert [r["image_id"] for r in rows] == [3, 5, 7]
    assert [r["file_name"] for r in rows] == ["a.png", "b.tif", "c.jpg"]
    assert [r["n_detections"] for r in rows] == [3, 0, 1]
    assert [r["n_above_threshold"] for r in rows] == [2, 0, 0]
    assert [r["expected_count"] for r in rows] == pytest.approx([1.6, 0.0, 0.4])
    assert [r["count_std"] for r in rows] == pytest.approx([math.sqrt(0.5), 0.0, math.sqrt(0.24)])
    assert not any(k.startswith("votes_") for k in rows[0])
    # the threshold is inclusive and configurable
    assert [r["n_above_threshold"] for r in image_counts(dets, 0.2)] == [3, 0, 1]
    assert [r["n_above_threshold"] for r in image_counts(dets, 0.95)] == [0, 0, 0]


def test_mean_votes_over_the_counted_detections():
    votes = [{"rater1": 2, "rater2": 0}, {"rater1": 1, "rater2": 1}, {"rater1": 0, "rater2": 2}]
    dets = _dets([_det(1, 0.8, votes=votes[0]), _det(1, 0.6, votes=votes[1]), _det(1, 0.1, votes=votes[2]),
                  _det(2, 0.3, votes=votes[2])], [1, 2],
                 {"fusion": {"sources": ["rater1", "rater1", "rater2", "rater2"]}})
    rows = image_counts(dets, 0.5)
    # image 1 counts the first two detections: rater1 (2 + 1) / 2, rater2 (0 + 1) / 2
    assert rows[0]["votes_rater1"] == pytest.approx(1.5) and rows[0]["votes_rater2"] == pytest.approx(0.5)
    # image 2 has nothing at or above the threshold: no mean
    assert math.isnan(rows[1]["votes_rater1"]) and math.isnan(rows[1]["votes_rater2"])
    assert rows[1]["file_name"] == ""  # predicted on a split, not a folder: no file names


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_unit_interval_is_a_user_error(threshold):
    with pytest.raises(UserError, match="threshold"):
        image_counts(_dets([], [1]), threshold)
