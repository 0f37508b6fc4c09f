"""The ground truth of an evaluation: a validated COCO dict as arrays, annotations by image and category."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.io.coco import bbox_problem, is_int, is_number


@dataclass
class GroundTruth:
    image_ids: np.ndarray  # (I,) ascending: the evaluated images
    widths: np.ndarray  # (I,) float64, nan where unknown
    heights: np.ndarray
    category_ids: np.ndarray  # (K,) ascending
    image: np.ndarray  # (A,) image position of each annotation
    category: np.ndarray  # (A,) category position
    boxes: np.ndarray  # (A, 4) xywh


def parse_ground_truth(coco: Any, name: str = "<ground truth>") -> GroundTruth:
    """Validate a COCO ground-truth dict; every problem names the file and the item.

    Zero-width or zero-height boxes are allowed (they match nothing); crowd annotations are refused.
    """
    if not isinstance(coco, dict):
        raise UserError("expected a COCO object with 'images', 'annotations' and 'categories'", name)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"missing list '{key}'", name)
    sizes = _image_sizes(coco["images"], name)
    categories = _category_ids(coco["categories"], name)
    annotations = coco["annotations"]
    image = np.zeros(len(annotations), dtype=np.int64)
    category = np.zeros(len(annotations), dtype=np.int64)
    boxes = np.zeros((len(annotations), 4))
    for i, ann in enumerate(annotations):
        item = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise UserError("must be an object", name, item)
        if not is_int(ann.get("image_id")) or ann["image_id"] not in sizes:
            raise UserError(f"image_id {ann.get('image_id')!r} is not in 'images'", name, item)
        if not is_int(ann.get("category_id")) or ann["category_id"] not in categories:
            raise UserError(f"category_id {ann.get('category_id')!r} is not in 'categories'", name, item)
        problem = bbox_problem(ann.get("bbox"), empty_ok=True)
        if problem:
            raise UserError(problem, name, item)
        if ann.get("iscrowd"):
            raise UserError("crowd annotations (iscrowd) are not supported", name, item)
        image[i], category[i], boxes[i] = ann["image_id"], ann["category_id"], ann["bbox"]
    image_ids = np.array(sorted(sizes), dtype=np.int64)
    category_ids = np.array(sorted(categories), dtype=np.int64)
    wh = np.array([sizes[i] for i in image_ids.tolist()]).reshape(-1, 2)
    return GroundTruth(
        image_ids=image_ids,
        widths=wh[:, 0],
        heights=wh[:, 1],
        category_ids=category_ids,
        image=np.searchsorted(image_ids, image),
        category=np.searchsorted(category_ids, category),
        boxes=boxes,
    )


def _image_sizes(images: list, name: str) -> dict[int, tuple[float, float]]:
    """Image id -> (width, height), NaN where either is missing or not a number."""
    sizes: dict[int, tuple[float, float]] = {}
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not is_int(im.get("id")):
            raise UserError("needs an integer 'id'", name, f"images[{i}]")
        if im["id"] in sizes:
            raise UserError(f"duplicate image id {im['id']}", name, f"images[{i}]")
        w, h = im.get("width"), im.get("height")
        sizes[im["id"]] = (float(w), float(h)) if is_number(w) and is_number(h) else (math.nan, math.nan)
    return sizes


def _category_ids(categories: list, name: str) -> set[int]:
    ids = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not is_int(cat.get("id")):
            raise UserError("needs an integer 'id'", name, f"categories[{i}]")
        ids.add(cat["id"])
    return ids
