"""Detections files: COCO results plus the list of images the model saw.

A detections file is a JSON object::

    {"format": "multirater-detections",
     "image_ids": [1, 2, 3],                       # every image predicted on, even with no detection
     "detections": [{"image_id": 1, "category_id": 1, "bbox": [x, y, w, h], "score": 0.9}, ...],
     "meta": {...}}                                # who made it and how

A bare COCO results list is accepted too (its image list is then the images it mentions).
Extra keys on a detection (``n_models``, ``score_std``, ``votes``) are kept.
Held in memory column-wise, so the engine works on numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_json, write_json

FORMAT = "multirater-detections"
_CORE_KEYS = ("image_id", "category_id", "bbox", "score")


@dataclass
class Detections:
    image_ids: np.ndarray  # (I,) int64, sorted, unique: every image predicted on
    image_id: np.ndarray  # (N,) int64
    category_id: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float64, xywh
    scores: np.ndarray  # (N,) float64 in [0, 1]
    extra: list[dict[str, Any]] | None = None  # per-detection extra keys, or None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, image_ids: Any = (), meta: dict[str, Any] | None = None) -> "Detections":
        return cls(
            image_ids=np.unique(np.asarray(list(image_ids), dtype=np.int64)),
            image_id=np.zeros(0, dtype=np.int64),
            category_id=np.zeros(0, dtype=np.int64),
            boxes=np.zeros((0, 4), dtype=np.float64),
            scores=np.zeros(0, dtype=np.float64),
            meta=dict(meta or {}),
        )

    def to_records(self) -> list[dict[str, Any]]:
        records = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "image_id": int(self.image_id[i]),
                "category_id": int(self.category_id[i]),
                "bbox": [float(v) for v in self.boxes[i]],
                "score": float(self.scores[i]),
            }
            if self.extra is not None:
                rec.update(self.extra[i])
            records.append(rec)
        return records

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "image_ids": [int(i) for i in self.image_ids],
            "detections": self.to_records(),
            "meta": self.meta,
        }


def _bad(path: Path, index: int, problem: str) -> UserError:
    return UserError(problem, path, f"detection {index}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_detections(data: Any, path: str | Path = "<detections>") -> Detections:
    """Validate and convert parsed JSON into :class:`Detections`; every problem names the item."""
    path = Path(path)
    meta: dict[str, Any] = {}
    image_ids: list[Any] | None = None
    if isinstance(data, dict):
        if "detections" not in data:
            raise UserError("missing key 'detections' (expected a detections object or a COCO results list)", path)
        records = data["detections"]
        image_ids = data.get("image_ids")
        meta = data.get("meta") or {}
        if image_ids is not None and (
            not isinstance(image_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in image_ids)
        ):
            raise UserError("'image_ids' must be a list of integers", path)
    elif isinstance(data, list):
        records = data
    else:
        raise UserError("expected a JSON object with 'detections' or a COCO results list", path)
    if not isinstance(records, list):
        raise UserError("'detections' must be a list", path)

    n = len(records)
    img = np.zeros(n, dtype=np.int64)
    cat = np.zeros(n, dtype=np.int64)
    boxes = np.zeros((n, 4), dtype=np.float64)
    scores = np.zeros(n, dtype=np.float64)
    extra: list[dict[str, Any]] = []
    has_extra = False
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise _bad(path, i, "must be an object")
        for key in _CORE_KEYS:
            if key not in rec:
                raise _bad(path, i, f"missing key '{key}'")
        if not isinstance(rec["image_id"], int) or isinstance(rec["image_id"], bool):
            raise _bad(path, i, f"image_id must be an integer, got {rec['image_id']!r}")
        if not isinstance(rec["category_id"], int) or isinstance(rec["category_id"], bool):
            raise _bad(path, i, f"category_id must be an integer, got {rec['category_id']!r}")
        bbox = rec["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
            raise _bad(path, i, f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise _bad(path, i, f"bbox has negative width or height: {bbox!r}")
        score = rec["score"]
        if not _number(score):
            raise _bad(path, i, f"score must be a finite number, got {score!r}")
        if not 0.0 <= score <= 1.0:
            raise _bad(path, i, f"score must lie in [0, 1], got {score!r}")
        img[i] = rec["image_id"]
        cat[i] = rec["category_id"]
        boxes[i] = bbox
        scores[i] = score
        rest = {k: v for k, v in rec.items() if k not in _CORE_KEYS}
        has_extra = has_extra or bool(rest)
        extra.append(rest)

    ids = np.asarray(image_ids if image_ids is not None else [], dtype=np.int64)
    if image_ids is not None:
        missing = np.setdiff1d(img, ids)
        if missing.size:
            raise UserError(f"detections on image ids not in 'image_ids': {missing[:5].tolist()}", path)
    all_ids = np.unique(np.concatenate([ids, img]))
    return Detections(all_ids, img, cat, boxes, scores, extra if has_extra else None, meta)


def read_detections(path: str | Path) -> Detections:
    return parse_detections(read_json(path), path)


def write_detections(path: str | Path, detections: Detections) -> None:
    write_json(path, detections.to_json(), indent=None)
