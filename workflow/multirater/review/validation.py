"""Does the review queue point at the objects raters disagree on? A check on synthetic data, where the truth is
known: which raters labelled each object.

In a synthetic dataset every rater's annotation of an object carries that object's outline (its
``segmentation``, the same polygon in every rater's file), so the annotations of one image group into objects,
each with the set of raters who labelled it. A reviewed box (a row of boxes.csv) is a box of the object it
overlaps most (IoU with any of that object's rater boxes, at least ``iou``), or of no labelled object.

The number reported: of the K most uncertain boxes, the share that are objects only one rater labelled, against
that share among all boxes. Both shares count every box, those of no labelled object included; beside them the same
share among the boxes of some labelled object only (most of an ensemble's low-scoring boxes are of no object).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from multirater.core.errors import UserError
from multirater.core.boxes import iou_matrix


@dataclass(frozen=True)
class LabelledObject:
    """One object of an image: the raters who labelled it and their boxes (xywh)."""

    raters: frozenset[str]
    boxes: np.ndarray  # (R, 4) xywh, one per rater who labelled it


def _outline_key(annotation: dict[str, Any], file: str) -> tuple[float, ...]:
    polygons = annotation.get("segmentation")
    if not (isinstance(polygons, list) and polygons and isinstance(polygons[0], list)):
        raise UserError("annotation has no segmentation outline: the truth needs a synthetic dataset's rater files, "
                        "where every rater's box of an object carries that object's outline", file,
                        f"annotation {annotation.get('id')}")
    return tuple(float(v) for polygon in polygons for v in polygon)


def labelled_objects(rater_cocos: dict[str, dict], files: dict[str, str]) -> dict[str, list[LabelledObject]]:
    """image file name -> its objects, from every rater's COCO file (objects keyed by their outline)."""
    grouped: dict[str, dict[tuple[float, ...], dict[str, list[float]]]] = {}
    for rater, coco in rater_cocos.items():
        names = {int(im["id"]): str(im["file_name"]) for im in coco["images"]}
        for name in names.values():
            grouped.setdefault(name, {})
        for annotation in coco["annotations"]:
            key = _outline_key(annotation, files[rater])
            grouped[names[int(annotation["image_id"])]].setdefault(key, {})[rater] = annotation["bbox"]
    return {name: [LabelledObject(frozenset(by_rater), np.array(list(by_rater.values()), dtype=np.float64))
                   for by_rater in objects.values()]
            for name, objects in grouped.items()}


def truth_raters(boxes: pd.DataFrame, objects: dict[str, list[LabelledObject]], iou: float = 0.5) -> np.ndarray:
    """How many raters labelled the object each row of ``boxes`` (boxes.csv) is a box of; 0: no labelled object.

    Every row's image must be one of the truth's images (matched by file name)."""
    out = np.zeros(len(boxes), dtype=np.int64)
    missing = sorted(set(boxes.file_name) - set(objects))
    if missing:
        raise UserError(f"images the truth dataset does not hold (no rater labelled them): {missing[:5]}")
    for name, rows in boxes.groupby("file_name", sort=False):
        found = objects[str(name)]
        if not found:
            continue
        xywh = rows[["x", "y", "w", "h"]].to_numpy(dtype=np.float64)
        owner = np.concatenate([np.full(len(o.boxes), k) for k, o in enumerate(found)])
        overlap = iou_matrix(xywh, np.concatenate([o.boxes for o in found]))  # (boxes, every rater box)
        best = overlap.argmax(axis=1)
        counts = np.array([len(o.raters) for o in found])[owner[best]]
        out[boxes.index.get_indexer(rows.index)] = np.where(overlap.max(axis=1) >= iou, counts, 0)
    return out


def share_summary(n_raters: np.ndarray, top: int, total_raters: int) -> dict[str, Any]:
    """Shares among the first ``top`` boxes (the ranking's order) and among all: boxes of objects one rater
    labelled (``single``), every rater (``all_raters``), no rater (``none``); and ``share_single_of_labelled``,
    the share of ``single`` among the boxes of some labelled object (``n_labelled``: all but ``none``)."""
    def shares(values: np.ndarray) -> dict[str, Any]:
        n = len(values)
        count = {"single": int(np.sum(values == 1)), "all_raters": int(np.sum(values == total_raters)),
                 "none": int(np.sum(values == 0))}
        labelled = n - count["none"]
        return {"boxes": n, **{f"share_{k}": (v / n if n else None) for k, v in count.items()},
                **{f"n_{k}": v for k, v in count.items()}, "n_labelled": labelled,
                "share_single_of_labelled": count["single"] / labelled if labelled else None}

    k = min(top, len(n_raters))
    return {"top_k": k, "raters": total_raters, "top": shares(n_raters[:k]), "all": shares(n_raters)}
