"""Do the expected counts hold? Per-image counts from detection scores against a reference label set.

For image i with detection scores p_1..p_n (every category), the reported count is the Poisson-binomial
mean E_i = sum_j p_j with standard deviation sd_i = sqrt(sum_j p_j (1 - p_j))
(``multirater.ensembles.counting``), and the reference's true count is n_i (its boxes on image i). Over the
I images:

- ``mae_expected`` = (1 / I) sum_i |E_i - n_i|;
- ``mae_threshold`` = (1 / I) sum_i |#{j : p_j >= threshold} - n_i|, the plain count of confident detections;
- ``coverage`` = (1 / I) #{i : E_i - z sd_i <= n_i <= E_i + z sd_i} (z = 1.96: a nominal 95 % interval);
- ``mean_true_count``, ``mean_expected_count``, ``mean_count_std``.

The images are the detections' (every image predicted on, also those without detections); the reference must
label each of them.

On new images there is no true count; ``with_test_accuracy`` adds to each image's counts the interval
E_i +/- z sd_i and how well the same approach's counts held on the test set (its ``mae_expected`` and
``coverage``), so a count is never reported without that evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_json
from multirater.core.ground_truth import parse_ground_truth
from multirater.ensembles.counting import image_counts
from multirater.io.detections import Detections

Z_95 = 1.96
SUMMARY_KEYS = ("n_images", "z", "mean_true_count", "mean_expected_count", "mae_expected", "mae_threshold",
                "coverage")


def true_counts(coco: Any, image_ids: np.ndarray, reference_name: str) -> np.ndarray:
    """Number of boxes of the COCO ground truth ``coco`` on each of ``image_ids`` (validated as ``evaluate``
    validates its ground truth); each image must be listed in it."""
    gt = parse_ground_truth(coco, reference_name)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    missing = np.setdiff1d(image_ids, gt.image_ids)
    if missing.size:
        raise UserError(f"image ids {missing[:5].tolist()} are not labelled by the reference", reference_name)
    per_image = np.bincount(gt.image, minlength=len(gt.image_ids))
    return per_image[np.searchsorted(gt.image_ids, image_ids)].astype(np.int64)


def count_accuracy(detections: Detections, true: np.ndarray, threshold: float = 0.5,
                   z: float = Z_95) -> dict[str, Any]:
    """``{"summary": {...}, "images": [...]}``: the formulas of the module docstring, one row per image of
    ``detections`` (ascending id), ``true`` holding the true count of each."""
    if not (np.isfinite(z) and z > 0):
        raise UserError(f"must be a positive number, got {z}", None, "z")
    rows = image_counts(detections, threshold)
    true = np.asarray(true, dtype=np.int64)
    if len(true) != len(rows):
        raise UserError(f"{len(true)} true counts for {len(rows)} images", None, "true counts")
    images = []
    for row, n in zip(rows, true.tolist()):
        expected, sd = row["expected_count"], row["count_std"]
        lower, upper = expected - z * sd, expected + z * sd
        images.append({
            "image_id": row["image_id"],
            "true_count": n,
            "n_detections": row["n_detections"],
            "n_above_threshold": row["n_above_threshold"],
            "expected_count": expected,
            "count_std": sd,
            "lower": lower,
            "upper": upper,
            "covered": bool(lower <= n <= upper),
            "error_expected": expected - n,
            "error_threshold": row["n_above_threshold"] - n,
        })
    return {"summary": _summary(images, threshold, z), "images": images}


def _summary(images: list[dict[str, Any]], threshold: float, z: float) -> dict[str, Any]:
    def mean(key: str, transform=lambda v: v) -> float | None:
        return float(np.mean([transform(im[key]) for im in images])) if images else None

    return {
        "n_images": len(images),
        "threshold": float(threshold),
        "z": float(z),
        "mean_true_count": mean("true_count"),
        "mean_expected_count": mean("expected_count"),
        "mean_count_std": mean("count_std"),
        "mae_expected": mean("error_expected", abs),
        "mae_threshold": mean("error_threshold", abs),
        "coverage": mean("covered", float),
    }


def read_count_accuracy(path: str | Path) -> dict[str, Any]:
    """A ``multirater count-accuracy`` file, checked for the keys its readers use."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise UserError("must be a count-accuracy file (multirater count-accuracy) with a 'summary'", path)
    if not isinstance(data.get("detections"), str):
        raise UserError("must name the detections file it measured", path, "detections")
    for key in SUMMARY_KEYS:
        if key not in data["summary"]:
            raise UserError("missing", path, f"summary.{key}")
    return data


def check_same_approach(accuracy: dict[str, Any], meta: Any, path: str | Path) -> None:
    """The count-accuracy file must describe the detections' own approach: the same model or ensemble
    (``identity``) with the same calibration (method and target), else its evidence is about other counts."""
    meta = meta if isinstance(meta, dict) else {}

    def calibration(record: Any) -> tuple[Any, Any]:
        record = record if isinstance(record, dict) else {}
        return record.get("method"), record.get("target")

    for key, mine, theirs in (("identity", accuracy.get("identity"), meta.get("identity")),
                              ("calibration", calibration(accuracy.get("calibration")),
                               calibration(meta.get("calibration")))):
        if mine != theirs:
            raise UserError(f"measured other counts ({key} {mine!r:.120}) than the detections' ({theirs!r:.120})",
                            path, key)


def with_test_accuracy(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``image_counts`` rows with ``count_lower``/``count_upper`` (E +/- z sd, z of the test-set summary) and
    the test set's ``test_count_mae`` and ``test_coverage``, the same on every row."""
    z = float(summary["z"])
    return [{**row,
             "count_lower": row["expected_count"] - z * row["count_std"],
             "count_upper": row["expected_count"] + z * row["count_std"],
             "test_count_mae": summary["mae_expected"],
             "test_coverage": summary["coverage"]} for row in rows]


def accuracy_sentence(summary: dict[str, Any], name: str) -> str:
    """One line saying how well the counts held on the test set, for logs."""
    if not summary.get("n_images"):
        return f"{name}: no test image to say how well these counts hold"
    return (f"on the test set ({summary['n_images']} images, {name}), these expected counts were off by "
            f"{summary['mae_expected']:.2f} objects per image on average (true {summary['mean_true_count']:.2f}, "
            f"expected {summary['mean_expected_count']:.2f}); the true count lay within expected +/- "
            f"{summary['z']:g} sd on {100 * summary['coverage']:.0f} % of images")
