"""Reliability-diagram data: per confidence bin, the mean confidence and the precision (share matched)."""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.evaluation.dece import bin_index


def reliability(confidence: np.ndarray, matched: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per confidence bin (D-ECE's binning): edges, count, mean confidence and precision (None when empty)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = bin_index(np.asarray(confidence, dtype=np.float64), bins)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=np.asarray(matched, dtype=np.float64), minlength=bins)
    return [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(count[b]),
            "confidence": float(conf[b] / count[b]) if count[b] else None,
            "precision": float(hits[b] / count[b]) if count[b] else None,
        }
        for b in range(bins)
    ]
