"""The review queue: images ranked by expected disagreement, boxes by their own.

A calibrated detection with score p is a true object with probability p, so a rater asked about it disagrees
with the ensemble with probability p(1 - p) in expectation: 0 for a sure box or a sure background, 1/4 at
p = 1/2. An image's expected disagreement is the sum of p(1 - p) over its detections, which is also the
variance of its object count (``ensembles.counting``): the images whose counts are least certain come first.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from multirater.core.errors import UserError
from multirater.ensembles.counting import vote_sources
from multirater.io.detections import Detections

DISAGREEMENT = "expected_disagreement"
UNCERTAINTY = "uncertainty"


def uncertainty(scores: np.ndarray) -> np.ndarray:
    """p(1 - p) of every score: the expected disagreement of one box."""
    p = np.asarray(scores, dtype=np.float64)
    return p * (1.0 - p)


def votes(detections: Detections) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """(sources, (N, S) member votes of each detection per source, models per source) of a fused file; no
    sources for a file without votes (a single model's)."""
    sources = vote_sources(detections)
    matrix = np.zeros((len(detections), len(sources)), dtype=np.int64)
    for k, record in enumerate((detections.extra or []) if sources else []):
        for j, source in enumerate(sources):
            matrix[k, j] = int((record.get("votes") or {}).get(source, 0))
    fusion = detections.meta.get("fusion") if isinstance(detections.meta, dict) else None
    listed = fusion.get("sources") if isinstance(fusion, dict) else None
    models = Counter(str(s) for s in listed) if isinstance(listed, list) else Counter()
    return sources, matrix, {s: int(models.get(s, 0)) for s in sources}


def _extra_column(detections: Detections, key: str) -> np.ndarray | None:
    """A numeric extra key of every detection (``n_models``, ``score_std``), or None when the file has none."""
    if not detections.extra or not len(detections) or key not in detections.extra[0]:
        return None
    return np.array([float(record.get(key, np.nan)) for record in detections.extra])


def box_table(detections: Detections, names: dict[int, str]) -> pd.DataFrame:
    """One row per detection, most uncertain first (ties: image id, then the order in the file): ``rank``,
    the image, the detection's index in its file, category, box, ``score``, ``uncertainty`` p(1 - p), the fused
    ``n_models`` and ``score_std`` where the file has them, and ``votes_<source>`` per source."""
    u = uncertainty(detections.scores)
    index = np.arange(len(detections))
    order = np.lexsort((index, detections.image_id, -u))
    table = pd.DataFrame({
        "rank": np.arange(1, len(detections) + 1),
        "image_id": detections.image_id[order],
        "file_name": [names[i] for i in detections.image_id[order].tolist()],
        "detection": index[order],
        "category_id": detections.category_id[order],
        "x": detections.boxes[order, 0], "y": detections.boxes[order, 1],
        "w": detections.boxes[order, 2], "h": detections.boxes[order, 3],
        "score": detections.scores[order],
        UNCERTAINTY: u[order],
    })
    for key in ("n_models", "score_std"):
        column = _extra_column(detections, key)
        if column is not None:
            whole = key == "n_models" and np.isfinite(column).all()
            table[key] = column[order].astype(np.int64) if whole else column[order]
    sources, matrix, _ = votes(detections)
    for j, source in enumerate(sources):
        table[f"votes_{source}"] = matrix[order, j]
    return table


def read_box_table(path: str) -> pd.DataFrame:
    """boxes.csv (written by ``multirater review`` from :func:`box_table`), in rank order."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read ({exc})", path) from None
    missing = {"rank", "image_id", "file_name", "x", "y", "w", "h", "score", UNCERTAINTY} - set(table.columns)
    if missing:
        raise UserError(f"missing columns {sorted(missing)} (expected boxes.csv of multirater review)", path)
    return table.sort_values("rank", kind="stable").reset_index(drop=True)


def image_table(detections: Detections, names: dict[int, str]) -> pd.DataFrame:
    """One row per image predicted on (also those without detections), highest expected disagreement first
    (ties: image id): the sum of p(1 - p), and beside it the expected count (sum of p) and its std."""
    ids = detections.image_ids
    row = np.searchsorted(ids, detections.image_id)
    p = detections.scores
    disagreement = np.bincount(row, weights=uncertainty(p), minlength=len(ids))
    table = pd.DataFrame({
        "image_id": ids,
        "file_name": [names[i] for i in ids.tolist()],
        "n_detections": np.bincount(row, minlength=len(ids)),
        DISAGREEMENT: disagreement,
        "expected_count": np.bincount(row, weights=p, minlength=len(ids)),
        "count_std": np.sqrt(np.maximum(disagreement, 0.0)),
    })
    table = table.iloc[np.lexsort((ids, -disagreement))].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
