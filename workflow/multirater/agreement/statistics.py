"""Inter-rater statistics: objects per image by provenance, and pairwise F1 across IoU thresholds.

Two raters' boxes on an image are paired one-to-one by the Hungarian assignment that maximises the
total IoU over pairs with IoU >= the threshold (``multirater.matching.hungarian_match``).
F1 = 2 * matched / (n_a + n_b); an image that neither rater annotated counts as F1 = 1 (they agree).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from multirater.core.boxes import iou_matrix
from multirater.data.dataset import Dataset
from multirater.core.matching import hungarian_match

if TYPE_CHECKING:
    import pandas as pd

IOU_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))


def match_pairs(boxes_a: np.ndarray, boxes_b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """For each box of rater a, the index of its partner in b or -1 (one-to-one)."""
    return hungarian_match(iou_matrix(boxes_a, boxes_b), iou_threshold)


def pair_f1(boxes_a: np.ndarray, boxes_b: np.ndarray, iou_threshold: float) -> float:
    """F1 between two raters' boxes on one image (symmetric in a and b)."""
    n_a, n_b = len(boxes_a), len(boxes_b)
    if n_a + n_b == 0:
        return 1.0
    matched = int(np.sum(match_pairs(boxes_a, boxes_b, iou_threshold) >= 0))
    return 2.0 * matched / (n_a + n_b)


def per_image_f1(dataset: Dataset, rater_a: str, rater_b: str, iou_threshold: float) -> np.ndarray:
    """F1 of a pair of raters on every multi-rater image (sorted by image id)."""
    return np.array(
        [
            pair_f1(dataset.boxes(rater_a, i), dataset.boxes(rater_b, i), iou_threshold)
            for i in dataset.rater_image_ids
        ]
    )


def f1_vs_iou(dataset: Dataset, thresholds: tuple[float, ...] = IOU_THRESHOLDS) -> "pd.DataFrame":
    """rater_a, rater_b, iou, f1_mean, f1_std (over images, ddof=1) for every pair of raters."""
    import pandas as pd

    rows = []
    for a, b in combinations(dataset.rater_names, 2):
        for t in thresholds:
            f1 = per_image_f1(dataset, a, b, t)
            std = float(np.std(f1, ddof=1)) if len(f1) > 1 else 0.0
            rows.append({"rater_a": a, "rater_b": b, "iou": t, "f1_mean": float(np.mean(f1)), "f1_std": std})
    return pd.DataFrame(rows, columns=["rater_a", "rater_b", "iou", "f1_mean", "f1_std"])


def counts(dataset: Dataset) -> "pd.DataFrame":
    """image_id, rater, n_objects, n_retained (source pretrained), n_added (source manual)."""
    import pandas as pd

    rows = []
    for image_id in dataset.rater_image_ids:
        for rater in dataset.rater_names:
            anns = dataset.annotations(rater, image_id)
            sources = [(a.get("attributes") or {}).get("source") for a in anns]
            rows.append({
                "image_id": image_id,
                "rater": rater,
                "n_objects": len(anns),
                "n_retained": sources.count("pretrained"),
                "n_added": sources.count("manual"),
            })
    return pd.DataFrame(rows, columns=["image_id", "rater", "n_objects", "n_retained", "n_added"])


def mean_pairwise_f1(dataset: Dataset, iou_threshold: float = 0.5) -> float:
    """Mean over rater pairs of the per-image mean F1."""
    pairs = list(combinations(dataset.rater_names, 2))
    if not pairs:
        return float("nan")
    return float(np.mean([per_image_f1(dataset, a, b, iou_threshold).mean() for a, b in pairs]))


# File names written by ``multirater agreement --out DIR`` (figures as .png and .pdf).
COUNTS_CSV = "counts.csv"
F1_CSV = "f1_vs_iou.csv"
FIGURE1 = "fig1_rater_agreement"
FIGURE2 = "fig2_interrater"
OUTPUT_FILES = (COUNTS_CSV, F1_CSV, FIGURE1 + ".png", FIGURE1 + ".pdf", FIGURE2 + ".png", FIGURE2 + ".pdf")


def write_agreement(dataset: Dataset, out: str | Path, figure_image: int | None = None) -> list[Path]:
    """Write counts.csv, f1_vs_iou.csv and Figures 1-2 into ``out``; all or nothing."""
    from multirater.core.errors import UserError
    from multirater.core.files import write_csv
    from multirater.agreement.figures import figure_interrater, figure_matched_boxes
    from multirater.figures.style import save_figure

    out = Path(out)
    image_id = dataset.rater_image_ids[0] if figure_image is None else int(figure_image)
    if image_id not in dataset.rater_image_ids:
        raise UserError(f"image id {image_id} is not a multi-rater image of {dataset.manifest}", None, "--image")
    count_table = counts(dataset)
    f1_table = f1_vs_iou(dataset)
    written: list[Path] = []
    try:
        write_csv(out / COUNTS_CSV, count_table)
        written.append(out / COUNTS_CSV)
        write_csv(out / F1_CSV, f1_table)
        written.append(out / F1_CSV)
        written += save_figure(figure_matched_boxes(dataset, image_id), out / FIGURE1)
        written += save_figure(figure_interrater(count_table, f1_table), out / FIGURE2)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
