"""Rater agreement: objects per image by provenance, and F1 across IoU thresholds between raters
(inter-rater) and, when the dataset has second passes, between a rater's two passes (intra-rater).

Inter-rater agreement is measured on the images two or more raters labelled (raters may have labelled
different images); a dataset without such images has none, and says so.

Two annotations of an image are paired one-to-one by the Hungarian assignment that maximises the
total IoU over pairs with IoU >= the threshold (``multirater.core.matching.hungarian_match``).
F1 = 2 * matched / (n_a + n_b); an image that neither annotation covers counts as F1 = 1 (they agree).
Intra-rater agreement well above inter-rater agreement means the raters differ systematically (bias);
about equal means their disagreement is noise.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from multirater.core.boxes import iou_matrix
from multirater.core.matching import hungarian_match
from multirater.data.dataset import Dataset

if TYPE_CHECKING:
    import pandas as pd

IOU_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))
F1_COLUMNS = ["rater_a", "rater_b", "iou", "f1_mean", "f1_std"]
AGREEMENT_COLUMN = "agreement"  # inter (two raters) or intra (a rater's two passes); only with repeats
NO_SHARED_IMAGES = "no image has two or more raters"


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


def shared_image_ids(dataset: Dataset, rater_a: str, rater_b: str) -> list[int]:
    """The images both raters labelled, sorted by id."""
    return sorted(set(dataset.rater_image_ids(rater_a)) & set(dataset.rater_image_ids(rater_b)))


def images_with_two_or_more_raters(dataset: Dataset) -> list[int]:
    """The rater images at least two raters labelled, sorted by id: the only ones agreement is measured on."""
    return [i for i in dataset.rater_image_ids if len(dataset.raters_of(i)) >= 2]


def rater_pairs(dataset: Dataset) -> list[tuple[str, str]]:
    """The pairs of raters who labelled at least one image in common, in the manifest's order."""
    return [(a, b) for a, b in combinations(dataset.rater_names, 2) if shared_image_ids(dataset, a, b)]


def per_image_f1(dataset: Dataset, rater_a: str, rater_b: str, iou_threshold: float) -> np.ndarray:
    """F1 of a pair of raters on every image both labelled (sorted by image id)."""
    return np.array(
        [
            pair_f1(dataset.boxes(rater_a, i), dataset.boxes(rater_b, i), iou_threshold)
            for i in shared_image_ids(dataset, rater_a, rater_b)
        ]
    )


def per_image_intra_f1(dataset: Dataset, rater: str, iou_threshold: float) -> np.ndarray:
    """F1 between a rater's first and second pass on every image of the second pass (sorted by id)."""
    return np.array(
        [
            pair_f1(dataset.boxes(rater, i), dataset.repeat_boxes(rater, i), iou_threshold)
            for i in dataset.repeat_image_ids(rater)
        ]
    )


def _row(a: str, b: str, iou: float, f1: np.ndarray) -> dict:
    std = float(np.std(f1, ddof=1)) if len(f1) > 1 else 0.0
    return {"rater_a": a, "rater_b": b, "iou": iou, "f1_mean": float(np.mean(f1)), "f1_std": std}


def f1_vs_iou(dataset: Dataset, thresholds: tuple[float, ...] = IOU_THRESHOLDS) -> "pd.DataFrame":
    """rater_a, rater_b, iou, f1_mean, f1_std (over images, ddof=1) for every pair of raters, over the
    images both labelled (pairs without such images have no rows).

    When some raters have a second pass, each of them adds intra-rater rows (rater_a = rater_b: the
    two passes, over the second pass's images) after the pairs, and a column ``agreement`` says
    ``inter`` or ``intra``; without second passes the table has no such column.
    """
    import pandas as pd

    rows = [
        {**_row(a, b, t, per_image_f1(dataset, a, b, t)), AGREEMENT_COLUMN: "inter"}
        for a, b in rater_pairs(dataset)
        for t in thresholds
    ]
    rows += [
        {**_row(r, r, t, per_image_intra_f1(dataset, r, t)), AGREEMENT_COLUMN: "intra"}
        for r in dataset.repeated_raters
        for t in thresholds
    ]
    columns = F1_COLUMNS + [AGREEMENT_COLUMN] if dataset.repeated_raters else F1_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def counts(dataset: Dataset) -> "pd.DataFrame":
    """image_id, rater, n_objects, n_retained (source pretrained), n_added (source manual): one row per rater
    image and rater who labelled it."""
    import pandas as pd

    rows = []
    for image_id in dataset.rater_image_ids:
        for rater in dataset.raters_of(image_id):
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
    """Mean over rater pairs (those with images in common) of the per-image mean F1; NaN without pairs."""
    pairs = rater_pairs(dataset)
    if not pairs:
        return float("nan")
    return float(np.mean([per_image_f1(dataset, a, b, iou_threshold).mean() for a, b in pairs]))


def agreement_summary(f1: "pd.DataFrame", iou_threshold: float = 0.5) -> str:
    """One line: mean inter-rater F1 at ``iou_threshold`` over pairs, and intra-rater F1 per rater."""
    at = f1[np.isclose(f1["iou"], iou_threshold)]
    intra = at[at["rater_a"] == at["rater_b"]]
    inter = at[at["rater_a"] != at["rater_b"]]
    pairs = f"{len(inter)} pair" + ("s" if len(inter) > 1 else "")
    parts = [f"inter-rater F1@IoU{iou_threshold:g} "
             + (f"{inter['f1_mean'].mean():.3f} (mean over {pairs})" if len(inter) else f"n/a ({NO_SHARED_IMAGES})")]
    if len(intra):
        per_rater = ", ".join(f"{r} {v:.3f}" for r, v in zip(intra["rater_a"], intra["f1_mean"]))
        parts.append(f"intra-rater (pass 1 vs 2) {intra['f1_mean'].mean():.3f} ({per_rater})")
    else:
        parts.append("intra-rater: no second passes in this dataset")
    return "agreement: " + "; ".join(parts)
