"""Images larger than the model's input: random training crops, and prediction by overlapping windows.

Off unless ``model.tile_size`` is set; an image no larger than the tile in either direction is always
used whole, exactly as without tiling. Crops and windows go through the model's resize like any image:
with ``min_size = max_size = tile_size`` they enter the model at full resolution.

**Prediction windows.** Along an axis of length L, windows of the tile size T start at 0, T - O,
2 (T - O), ... (O: ``model.tile_overlap``) and the last one ends at L, so it may overlap its neighbour
by more than O; an axis no longer than T is one window. Each window *owns* its central region: the
window minus half of its overlap with each neighbour, with the outer image borders owned to infinity
(the owned regions partition the plane). A detection is kept only from the window that owns its box
centre, after shifting it to image coordinates. An object no larger than the overlap lies wholly
inside the window owning its centre, and any cut-off part of it that a neighbouring window sees has
its centre outside that neighbour's region: every such object comes out exactly once, whole. So the
overlap must be at least the largest object.

**Training crops.** Each time an image larger than the tile is drawn, a tile-sized crop is taken at
a position drawn from a generator seeded with (seed, epoch, image id), so a resumed run draws the same
crops. A box cut by the crop is kept, clipped to the crop, when at least ``model.tile_min_visible`` of
its area lies inside; otherwise it is dropped (its visible pixels stay unlabelled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels (x1, y1 excluded)
Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes xyxy, scores, labels
Detector = Callable[[list[torch.Tensor]], list[Found]]

# Sets the crop generator apart from the label-sampling one, seeded with the same (seed, epoch, image).
CROP_STREAM = 0xC409


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the windows along one axis start (see the module docstring)."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile - overlap), length - tile]


def _owned_intervals(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Each window's half-open owned interval [low, high): cut at the middle of each overlap."""
    cuts = [(starts[i + 1] + min(starts[i] + tile, length)) / 2 for i in range(len(starts) - 1)]
    return list(zip([-math.inf, *cuts], [*cuts, math.inf]))


@dataclass(frozen=True)
class Tile:
    """One prediction window and the region of box centres it keeps."""

    window: Window
    owned: tuple[float, float, float, float]  # x_low, y_low, x_high, y_high (low included, high excluded)

    def owns(self, boxes: np.ndarray) -> np.ndarray:
        """Which of these boxes (xyxy, image coordinates) have their centre in this window's region."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        x_low, y_low, x_high, y_high = self.owned
        return (cx >= x_low) & (cx < x_high) & (cy >= y_low) & (cy < y_high)


def tiles(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """The prediction windows of a ``width`` x ``height`` image, row by row."""
    xs, ys = axis_starts(width, tile, overlap), axis_starts(height, tile, overlap)
    x_owned, y_owned = _owned_intervals(xs, tile, width), _owned_intervals(ys, tile, height)
    return [
        Tile((x0, y0, min(x0 + tile, width), min(y0 + tile, height)), (x_low, y_low, x_high, y_high))
        for y0, (y_low, y_high) in zip(ys, y_owned)
        for x0, (x_low, x_high) in zip(xs, x_owned)
    ]


def detect_tiled(detector: Detector, read_window: Callable[[Window], torch.Tensor], width: int, height: int,
                 tile: int, overlap: int, batch_size: int, only: list[Tile] | None = None) -> Found:
    """Detections on a whole image from its overlapping windows, each object once (module docstring).

    ``detector`` maps a batch of CHW windows to (boxes xyxy, scores, labels) in window coordinates;
    ``read_window`` gives one window's pixels, so only ``batch_size`` windows are in memory at a time.
    ``only``: these of the image's tiles (the detections of their owned regions); None: all of them.
    Returns boxes in image coordinates (float64), by decreasing score.
    """
    grid = tiles(width, height, tile, overlap) if only is None else only
    if not grid:
        return np.zeros((0, 4)), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    boxes, scores, labels = [], [], []
    for start in range(0, len(grid), batch_size):
        chunk = grid[start:start + batch_size]
        for part, (found_boxes, found_scores, found_labels) in zip(chunk, detector([read_window(t.window) for t in chunk])):
            x0, y0 = part.window[:2]
            shifted = np.asarray(found_boxes, dtype=np.float64).reshape(-1, 4) + np.array([x0, y0, x0, y0], np.float64)
            keep = part.owns(shifted)
            boxes.append(shifted[keep])
            scores.append(np.asarray(found_scores)[keep])
            labels.append(np.asarray(found_labels)[keep])
    all_scores = np.concatenate(scores)
    order = np.argsort(-all_scores, kind="stable")
    return np.concatenate(boxes)[order], all_scores[order], np.concatenate(labels)[order]


def crop_window(seed: int, epoch: int, image_id: int, width: int, height: int, tile: int) -> Window | None:
    """The training crop of an image drawn in ``epoch``; None when the image fits in the tile."""
    if width <= tile and height <= tile:
        return None
    rng = np.random.default_rng([seed, epoch, image_id, CROP_STREAM])
    x0 = int(rng.integers(max(width - tile, 0) + 1))
    y0 = int(rng.integers(max(height - tile, 0) + 1))
    return x0, y0, min(x0 + tile, width), min(y0 + tile, height)


def crop_boxes(boxes: torch.Tensor, window: Window, min_visible: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (xyxy, image coordinates) cut by a crop: which are kept (at least ``min_visible`` of
    their area inside), and the kept ones clipped to the crop, in crop coordinates."""
    x0, y0, x1, y1 = window
    low = torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    high = torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype)
    clipped = torch.maximum(torch.minimum(boxes, high), low)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (inside > 0) & (inside >= min_visible * area)
    return keep, clipped[keep] - low


def shift_polygons(segmentation: list[list[float]], dx: float, dy: float) -> list[list[float]]:
    """COCO polygons ``[[x, y, x, y, ...], ...]`` moved by (dx, dy)."""
    return [[v + (dx if i % 2 == 0 else dy) for i, v in enumerate(polygon)] for polygon in segmentation]
