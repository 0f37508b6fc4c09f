"""A finite-sample reference for D-ECE: the D-ECE that a perfectly calibrated detector with the same
scores would show on this test set.

Even a perfectly calibrated detector scores a D-ECE above 0 on a finite test set: each bin's precision is an
average of few 0/1 outcomes. The reference draws the outcomes of a perfectly calibrated detector,
matched_i ~ Bernoulli(confidence_i), ``draws`` times, and computes the D-ECE of each draw with the same bins
and the same function as the measured D-ECE (:func:`multirater.evaluation.dece.binned_dece`). A measured
D-ECE inside [p2.5, p97.5] of these draws cannot be told apart from perfect calibration at this test-set
size. The reference depends on the confidences (and box features) only, not on the ground truth or the IoU
threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.evaluation.dece import binned_dece, dece_bins

# Tells the reference's random stream apart from the bootstrap's, which uses the same evaluation seed.
REFERENCE_STREAM = 0xDECE
# Uniforms drawn at once: bounds memory (~4 arrays of 16 MB) at any number of detections.
CHUNK_ELEMENTS = 2_000_000


def reference_dece_draws(
    confidence: np.ndarray,
    bins: int,
    features: np.ndarray | None = None,
    draws: int = 200,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> np.ndarray:
    """D-ECE of ``draws`` perfectly calibrated outcome sets for these confidences (draws,).

    Draw r: ``u = numpy.random.default_rng([REFERENCE_STREAM, seed]).random((draws, N))``,
    ``matched = u[r] < confidence`` (so P(matched_i) = confidence_i; a confidence of 1 is always matched,
    0 never), then :func:`multirater.evaluation.dece.dece` of (confidence, matched, bins, features).
    The rows are drawn in chunks of about ``chunk_elements`` uniforms, which continues the same random
    stream, so the result does not depend on the chunk size. NaN for every draw if there is no detection.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    n = len(confidence)
    if n == 0:
        return np.full(int(draws), np.nan)
    index = dece_bins(confidence, bins, features)
    rng = np.random.default_rng([REFERENCE_STREAM, int(seed)])
    rows_per_chunk = max(1, int(chunk_elements) // n)
    values = np.empty(int(draws))
    for start in range(0, int(draws), rows_per_chunk):
        rows = min(rows_per_chunk, int(draws) - start)
        gaps = (rng.random((rows, n)) < confidence).astype(np.float64)
        gaps -= confidence  # matched - confidence, as the measured D-ECE
        values[start : start + rows] = binned_dece(index, gaps)
    return values


def dece_reference(
    confidence: np.ndarray,
    bins: int,
    features: np.ndarray | None = None,
    draws: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference's record: ``{"draws", "seed", "mean", "p2.5", "p97.5"}`` over
    :func:`reference_dece_draws` (percentiles as ``numpy.percentile``, linear); the numbers are None when
    there is no detection."""
    values = reference_dece_draws(confidence, bins, features, draws, seed)
    defined = values[np.isfinite(values)]
    record: dict[str, Any] = {"draws": int(draws), "seed": int(seed)}
    for key, statistic in (("mean", np.mean), ("p2.5", lambda v: np.percentile(v, 2.5)),
                           ("p97.5", lambda v: np.percentile(v, 97.5))):
        record[key] = float(statistic(defined)) if len(defined) else None
    return record
