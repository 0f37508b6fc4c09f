"""The one validator of COCO values and boxes, shared by the dataset check, the ground truth of an
evaluation and the detections files. Each check returns a problem (a sentence) or None, so a
caller can either collect every problem (``multirater check``) or stop at the first one."""

from __future__ import annotations

import math
from typing import Any

# A box may overshoot its image by this much (annotation tools round to whole pixels).
OUTSIDE_TOLERANCE_PX = 1.0


def is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON's true/false parse as bool, a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bbox_problem(bbox: Any, *, empty_ok: bool) -> str | None:
    """What is wrong with a COCO ``[x, y, w, h]`` box, or None.

    ``empty_ok``: a zero width or height is allowed (predictions and ground truth may be
    degenerate); labels of a dataset must have positive width and height.
    """
    if not isinstance(bbox, list) or len(bbox) != 4:
        return f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}"
    if not all(is_number(v) for v in bbox):
        return f"bbox must be 4 finite numbers [x, y, w, h], got a non-numeric or non-finite coordinate in {bbox!r}"
    w, h = bbox[2], bbox[3]
    if empty_ok and (w < 0 or h < 0):
        return f"bbox has negative width or height: {bbox!r}"
    if not empty_ok and (w <= 0 or h <= 0):
        return f"bbox width and height must be positive, got w={w}, h={h} in {bbox}"
    return None


def outside_problem(bbox: list[float], image: dict[str, Any], tolerance: float = OUTSIDE_TOLERANCE_PX) -> str | None:
    """A valid box that lies outside its image (``{id, width, height}``, and ``file_name``: named as the
    importers name it) by more than ``tolerance`` px."""
    x, y, w, h = bbox
    if lies_outside(x, y, x + w, y + h, image["width"], image["height"], tolerance):
        name = image.get("file_name")
        file = f"{name}, " if isinstance(name, str) and name else ""
        return (
            f"bbox {bbox} lies outside image {image['id']} "
            f"({file}{image['width']}x{image['height']} px) by more than {tolerance:g} px"
        )
    return None


def lies_outside(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int, tolerance: float = OUTSIDE_TOLERANCE_PX
) -> bool:
    """Whether corners ``(x1, y1, x2, y2)`` reach beyond a ``width`` x ``height`` image by more than ``tolerance``."""
    return x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance
