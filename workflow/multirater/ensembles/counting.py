"""Object counts per image from calibrated detections.

When confidences are calibrated, detection i is a true object with probability p_i (its score). Treating
the detections as independent Bernoulli variables, the number of objects they contain follows a
Poisson-binomial distribution: its mean is sum p_i (the expected count) and its variance
sum p_i (1 - p_i). Duplicates and missed objects are not modelled: the count is that of the detected
objects, as calibrated as the scores are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.io.detections import Detections
from multirater.core.errors import UserError


def poisson_binomial_moments(scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the number of successes of independent Bernoulli(scores)."""
    p = np.asarray(scores, dtype=np.float64)
    return float(p.sum()), float(np.sqrt(np.sum(p * (1.0 - p))))


def vote_sources(detections: Detections) -> list[str]:
    """The sources named in the fused detections' ``votes``, in the fusion's order (empty if none)."""
    fusion = detections.meta.get("fusion") if isinstance(detections.meta, dict) else None
    names: list[str] = []
    if isinstance(fusion, dict) and isinstance(fusion.get("sources"), list):
        names = [str(s) for s in fusion["sources"]]
    for rec in detections.extra or []:
        names.extend(str(s) for s in (rec.get("votes") or {}))
    return list(dict.fromkeys(names))


def image_counts(detections: Detections, threshold: float = 0.5) -> list[dict[str, Any]]:
    """One row per image predicted on (also those without detections), in image id order.

    Columns: ``image_id``, ``file_name`` (from ``meta.file_names`` when the images were a folder, else
    empty), ``n_detections`` (all), ``n_above_threshold`` (score >= threshold), ``expected_count``
    (sum of scores), ``count_std`` (sqrt(sum p(1-p))) and, for fused ensembles with sources,
    ``votes_<source>``: the mean number of that source's models behind the image's detections at or
    above the threshold (NaN when there are none).
    """
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"must lie in [0, 1], got {threshold}", None, "threshold")
    ids = detections.image_ids
    row = np.searchsorted(ids, detections.image_id)  # image_ids holds every detection's image
    n_images = len(ids)
    p = detections.scores
    counted = p >= threshold
    n_all = np.bincount(row, minlength=n_images)
    n_counted = np.bincount(row, weights=counted, minlength=n_images)
    expected = np.bincount(row, weights=p, minlength=n_images)
    variance = np.bincount(row, weights=p * (1.0 - p), minlength=n_images)

    sources = vote_sources(detections)
    mean_votes = {}
    for source in sources:
        extra = detections.extra or [{}] * len(detections)
        votes = np.array([float((rec.get("votes") or {}).get(source, 0)) for rec in extra], dtype=np.float64)
        total = np.bincount(row[counted], weights=votes[counted], minlength=n_images)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_votes[source] = np.where(n_counted > 0, total / np.maximum(n_counted, 1), np.nan)

    names = detections.meta.get("file_names") if isinstance(detections.meta, dict) else None
    names = names if isinstance(names, dict) else {}
    rows = []
    for k, image_id in enumerate(ids):
        out: dict[str, Any] = {
            "image_id": int(image_id),
            "file_name": str(names.get(str(int(image_id)), "")),
            "n_detections": int(n_all[k]),
            "n_above_threshold": int(n_counted[k]),
            "expected_count": float(expected[k]),
            "count_std": float(np.sqrt(max(variance[k], 0.0))),
        }
        for source in sources:
            out[f"votes_{source}"] = float(mean_votes[source][k])
        rows.append(out)
    return rows
