"""D-ECE, the detection expected calibration error (Campi et al. Eq. 1; Kueppers et al. 2020; netcal's
``ECE(bins, detection=True)``), on the test images and on bootstrap resamples of them."""

from __future__ import annotations

import numpy as np

def dece(confidence: np.ndarray, matched: np.ndarray, bins: int = 10, features: np.ndarray | None = None) -> float:
    """D-ECE of N detections with confidences ``confidence`` and matched flags ``matched`` (0/1).

    D-ECE = sum over bins b of |B_b| / N * |precision(b) - confidence(b)|,

    where B_b holds the detections in bin b, precision(b) is the share of them that are matched and
    confidence(b) their mean confidence; as |B_b| * (precision(b) - confidence(b)) is the sum over B_b of
    (matched - confidence), D-ECE = sum_b |sum_{i in B_b} (matched_i - confidence_i)| / N.

    Binning: ``bins`` equal-width bins with edges ``linspace(0, 1, bins + 1)``, each [a, b) except the last,
    [a, 1], which is closed; empty bins add nothing. With ``features`` (N, F) in [0, 1] (relative box centre or
    size) the bins are joint: ``bins`` per dimension, bins**(1 + F) cells. NaN if there is no detection.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    index = dece_bins(confidence, bins, features)
    if len(index) == 0:
        return float("nan")
    gap = np.asarray(matched, dtype=np.float64) - confidence
    return float(binned_dece(index, gap[None, :])[0])


def binned_dece(index: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """D-ECE of each row of ``gaps`` (R, N), matched - confidence per detection, with the detections in the
    bins ``index`` (N,) (:func:`dece_bins`): sum over bins of |sum of gaps| / N, one value per row.

    Every row is summed exactly as a lone row would be (same bins, same order), so row r equals
    :func:`dece` of that row's flags bit for bit. N must be at least 1.
    """
    n_rows, n = gaps.shape
    n_bins = int(index.max()) + 1
    flat = (index[None, :] + n_bins * np.arange(n_rows)[:, None]).ravel()
    sums = np.bincount(flat, weights=gaps.ravel(), minlength=n_rows * n_bins).reshape(n_rows, n_bins)
    return np.abs(sums).sum(axis=1) / n


def bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each value in [0, 1]: edges linspace(0, 1, bins + 1), bins [a, b), the last bin closed."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)


def dece_bins(confidence: np.ndarray, bins: int, features: np.ndarray | None = None) -> np.ndarray:
    """Bin of each detection: by confidence, or jointly by confidence and each feature column in [0, 1]."""
    index = bin_index(np.asarray(confidence, dtype=np.float64), bins)
    if features is None or np.size(features) == 0:
        return index
    cols = [bin_index(np.clip(f, 0.0, 1.0), bins) for f in np.asarray(features, dtype=np.float64).T]
    return np.ravel_multi_index([index, *cols], (bins,) * (1 + len(cols)))


def box_features(names: tuple[str, ...], boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Relative centre (``cx``, ``cy``) and size (``w``, ``h``) of xywh boxes on images of the given sizes,
    columns in the order asked, clipped to [0, 1]."""
    if not names:
        return np.zeros((len(boxes), 0))
    values = {
        "cx": (boxes[:, 0] + boxes[:, 2] / 2) / width,
        "cy": (boxes[:, 1] + boxes[:, 3] / 2) / height,
        "w": boxes[:, 2] / width,
        "h": boxes[:, 3] / height,
    }
    return np.clip(np.column_stack([values[n] for n in names]), 0.0, 1.0)


def resampled_dece(bin_id: np.ndarray, image: np.ndarray, gap: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """D-ECE on every bootstrap resample (B,), NaN for a resample without detections.

    ``bin_id`` (N,): each detection's bin (:func:`dece_bins`); ``image`` (N,): its image position; ``gap`` (N,):
    matched - confidence; ``counts`` (B, I): how often each image was drawn. A bin's sum of gaps on a resample
    is the per-image sums weighted by the counts, so no resample is built.
    """
    from scipy.sparse import csr_matrix

    if len(gap) == 0:
        return np.full(counts.shape[0], np.nan)
    uniq, occupied = np.unique(bin_id, return_inverse=True)
    n_images = counts.shape[1]
    per_image = csr_matrix((gap, (image, occupied)), shape=(n_images, len(uniq)))
    n_per_image = np.bincount(image, minlength=n_images).astype(np.float64)
    totals = np.asarray((per_image.T @ counts.T).T)  # (B, bins)
    n = counts @ n_per_image
    return np.where(n > 0, np.abs(totals).sum(axis=1) / np.maximum(n, 1.0), np.nan)
