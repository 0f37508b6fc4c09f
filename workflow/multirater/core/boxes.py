"""Box conversions and the one IoU, shared by matching, fusion, evaluation and agreement.

Boxes are float64 arrays of shape (..., 4) in COCO's [x, y, width, height] unless a name says xyxy.
IoU follows pycocotools exactly (no +1 on widths; a pair with no union has IoU 0).
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: object) -> np.ndarray:
    """Return ``boxes`` as a float64 (N, 4) array (an empty input gives shape (0, 4))."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return arr.reshape(-1, 4)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[x, y, w, h] -> [x1, y1, x2, y2], as an (N, 4) array."""
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2] -> [x, y, w, h], as an (N, 4) array."""
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes ``a`` (..., 4) and ``b`` (..., 4), broadcast against each other over the leading axes.

    IoU = |a ∩ b| / (|a| + |b| - |a ∩ b|), with pycocotools' arithmetic, so that every value is bit-identical
    to pycocotools' ``maskUtils.iou`` for boxes. ``iou(a[k], b[k])`` pairs boxes; ``iou(a[:, None], b[None])``
    gives every box of ``a`` with every box of ``b``.
    """
    return iou_of_corners(corners(a), corners(b))


def corners(boxes: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x1, y1, x2, y2, area) of xywh boxes (..., 4): the columns :func:`iou_of_corners` takes."""
    b = np.asarray(boxes, dtype=np.float64)
    return b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3], b[..., 2] * b[..., 3]


def iou_of_corners(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    """IoU of boxes given as :func:`corners` columns, broadcast: the arithmetic of :func:`iou`.

    For many pairs of boxes held as columns (``x1[i]``, ``x1[j]`` ...), this skips gathering (N, 4) rows.
    """
    ax1, ay1, ax2, ay2, a_area = a
    bx1, by1, bx2, by2, b_area = b
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    union = a_area + b_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), both xywh: shape (N, M)."""
    return iou(as_boxes(a)[:, None, :], as_boxes(b)[None, :, :])
