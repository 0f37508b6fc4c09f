"""Linked pairs for fusion: every two boxes of the same (image, category), from different models, with IoU >= t.

Found without comparing all pairs, in memory proportional to the boxes. IoU >= t bounds how far apart two boxes'
centres can lie, relative to the *smaller* of the two widths (and heights):

    |cx_i - cx_j| <= k(t) * min(w_i, w_j),   |cy_i - cy_j| <= k(t) * min(h_i, h_j),   k(t) = (1 - t) * max(1, 1 / 2t)

(IoU >= t needs an overlap of t times the wider box, w_b; two intervals of widths w_a <= w_b overlap by at most
(w_a + w_b) / 2 - |dc|, or w_a when one holds the other, and w_b <= w_a / t.) So a box need only look within a
window of its own size around its centre, whichever of the two is smaller. Areas are close too: the overlap is at
most the smaller area and at least t times the larger, so the areas differ by at most a factor 1 / t. And since
IoU >= t means an overlap of at least t / (1 + t) times the sum of the areas, and the overlap is no taller than the
shorter box, the overlap in x is at least t / (1 + t) (w_i + w_j): |cx_i - cx_j| <= (1 - t) / (2 (1 + t)) (w_i + w_j),
a third of the mean width at t = 0.5 where the first bound allows half the smaller one (and the same in y).

Boxes are filed by centre in a uniform grid per (key, area class), an area class being a power of two of w * h.
Each box looks up the cells its window covers in its own class (only the cells from its own onward, so that a pair
of the same class is found once) and in the larger classes its partners can belong to (a smaller partner looks it
up itself). Candidates are made for a slice of boxes at a time, checked against both boxes' windows and models,
and then the exact IoU (``core.boxes``' arithmetic, the one the grouping uses) decides.
"""

from __future__ import annotations

import numpy as np

from multirater.core.boxes import corners, iou_of_corners

_QUERY_SLICE = 2048  # boxes whose candidates are made at once: small enough for the caches
_CANDIDATES = 1 << 20  # candidate pairs checked at once, at most (bounds the memory in crowded images)
_ROW_FRACTION = 0.5  # row height / mean window of a box in the grid: lower rows, fewer candidates, more runs
_COLUMN_FRACTION = 0.15  # column width / mean window of a box in the grid
_CELLS_PER_BOX = 4  # at most about this many cells per box
_MARGIN = 1e-9  # windows are widened by this (relative) so that rounding never loses a pair


def window_factor(threshold: float) -> float:
    """k(t): a pair with IoU >= t has centres within k(t) times the smaller width (and height) of each other."""
    return (1.0 - threshold) * max(1.0, 1.0 / (2.0 * threshold))


def _area_class(area: np.ndarray) -> np.ndarray:
    """floor(log2(area)), exactly."""
    return np.frexp(area)[1].astype(np.int64) - 1


def _expand(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [first, first + count): each item's range number and value."""
    total = int(count.sum())
    owner = np.repeat(np.arange(len(count)), count)
    value = np.arange(total) + np.repeat(first - (np.cumsum(count) - count), count)
    return owner, value


class _Grids:
    """The boxes filed by centre: one uniform grid per (key, area class), all cells in one CSR layout.

    ``order`` lists the filed boxes cell by cell (row-major within each grid); ``start[c]`` is the position in
    ``order`` of the first box of cell c. Attributes ``origin_x`` ... ``base`` are per grid.
    """

    def __init__(self, key: np.ndarray, cx: np.ndarray, cy: np.ndarray, area_class: np.ndarray, reach: np.ndarray):
        self.class_min = int(area_class.min())
        self.n_classes = int(area_class.max()) - self.class_min + 1
        grid_of = key * self.n_classes + (area_class - self.class_min)
        count = np.bincount(grid_of)
        grids = np.flatnonzero(count)
        count = count[grids]
        self.lookup = np.full((int(key.max()) + 1) * self.n_classes, -1, dtype=np.int64)
        self.lookup[grids] = np.arange(len(grids))
        grid = self.lookup[grid_of]
        self.origin_x, self.origin_y = np.full(len(grids), np.inf), np.full(len(grids), np.inf)
        extent_x, extent_y = np.full(len(grids), -np.inf), np.full(len(grids), -np.inf)
        np.minimum.at(self.origin_x, grid, cx)
        np.minimum.at(self.origin_y, grid, cy)
        np.maximum.at(extent_x, grid, cx)
        np.maximum.at(extent_y, grid, cy)
        extent_x -= self.origin_x
        extent_y -= self.origin_y
        # Rows a fraction of the grid's mean window, columns a smaller one: a box compares itself with whole runs
        # of cells (one per row), so narrow columns cut the candidates at little cost. Never more than a few
        # cells per box, however far apart the boxes lie. (Any cell size finds every pair; these are fast.)
        mean_width = np.bincount(grid, weights=reach[0], minlength=len(grids)) / count * 2
        mean_height = np.bincount(grid, weights=reach[1], minlength=len(grids)) / count * 2
        least = np.sqrt(extent_x * extent_y / (_CELLS_PER_BOX * count))
        least = np.maximum(least, np.maximum(extent_x, extent_y) / (_CELLS_PER_BOX * count))
        self.height = np.maximum(_ROW_FRACTION * mean_height, least)
        self.width = np.maximum(_COLUMN_FRACTION * mean_width, least)
        self.height = np.where(self.height > 0, self.height, 1.0)
        self.width = np.where(self.width > 0, self.width, 1.0)
        self.nx = np.floor(extent_x / self.width).astype(np.int64) + 1
        self.ny = np.floor(extent_y / self.height).astype(np.int64) + 1
        cells = self.nx * self.ny
        self.base = np.cumsum(cells) - cells
        self.grid = grid
        self.gx = self.cell_x(grid, cx)
        self.gy = self.cell_y(grid, cy)
        cell = self.base[grid] + self.gy * self.nx[grid] + self.gx
        self.order = np.argsort(cell, kind="stable")
        self.start = np.zeros(int(cells.sum()) + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell, minlength=len(self.start) - 1), out=self.start[1:])

    def find(self, key: np.ndarray, area_class: np.ndarray) -> np.ndarray:
        """The grid of each (key, area class), -1 where no box has that class."""
        inside = (area_class >= self.class_min) & (area_class < self.class_min + self.n_classes)
        grid_of = key * self.n_classes + np.clip(area_class - self.class_min, 0, self.n_classes - 1)
        return np.where(inside, self.lookup[grid_of], -1)

    def cell_x(self, grid: np.ndarray, x: np.ndarray) -> np.ndarray:
        column = np.floor((x - self.origin_x[grid]) / self.width[grid])
        return np.clip(column, 0, self.nx[grid] - 1).astype(np.int64)

    def cell_y(self, grid: np.ndarray, y: np.ndarray) -> np.ndarray:
        row = np.floor((y - self.origin_y[grid]) / self.height[grid])
        return np.clip(row, 0, self.ny[grid] - 1).astype(np.int64)


def linked_pairs(
    key: np.ndarray, boxes: np.ndarray, model: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of boxes with equal ``key``, different ``model`` and IoU >= ``threshold``, and its IoU.

    ``key`` (N,) ints >= 0 (e.g. one per image and category), ``boxes`` (N, 4) xywh, ``model`` (N,).
    Pairs come in no particular order.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    key = np.asarray(key, dtype=np.int64)
    if len(key) and key.max() >= len(key):  # the grids are indexed by key: make the keys dense
        key = np.unique(key, return_inverse=True)[1].reshape(-1)
    x1, y1, w, h = (np.ascontiguousarray(boxes[:, c]) for c in range(4))
    # a box of no area, or not finite, reaches IoU 0 (or NaN) with any other: it never links
    with np.errstate(invalid="ignore", over="ignore"):
        area = w * h
        linkable = np.flatnonzero(np.isfinite(boxes).all(axis=1) & (w > 0) & (h > 0) & np.isfinite(area))
    empty = np.zeros(0, dtype=np.int64)
    if len(linkable) < 2:
        return empty, empty.copy(), np.zeros(0)
    k = window_factor(threshold)
    cx, cy = x1[linkable] + w[linkable] / 2, y1[linkable] + h[linkable] / 2
    margin = _MARGIN * (np.abs(cx) + np.abs(cy) + w[linkable] + h[linkable] + 1.0)
    reach_x = k * w[linkable] * (1.0 + _MARGIN) + margin
    reach_y = k * h[linkable] * (1.0 + _MARGIN) + margin
    grids = _Grids(key[linkable], cx, cy, _area_class(area[linkable]), (reach_x, reach_y))
    # Everything below is in the grids' order: a box's position there is its number.
    filed = linkable[grids.order]
    cx, cy, reach_x, reach_y = cx[grids.order], cy[grids.order], reach_x[grids.order], reach_y[grids.order]
    grid, gx, gy = grids.grid[grids.order], grids.gx[grids.order], grids.gy[grids.order]
    area_class = _area_class(area[filed])
    largest_class = _area_class(area[filed] / threshold * (1.0 + _MARGIN))
    filed_key, filed_model = key[filed], model[filed]
    filed_corners = tuple(np.ascontiguousarray(c) for c in corners(boxes[filed]))

    # the second bound on the centres, from the reaches (k(t) times the sides): (1 - t) / (2 (1 + t) k(t))
    sum_factor = 1.0 / (2.0 * (1.0 + threshold) * max(1.0, 1.0 / (2.0 * threshold)))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lo in range(0, len(filed), _QUERY_SLICE):
        query = np.arange(lo, min(lo + _QUERY_SLICE, len(filed)))
        owner, first, stop = _cell_ranges(grids, query, filed_key, cx, cy, reach_x, reach_y, area_class,
                                          largest_class, grid, gx, gy)
        count = np.maximum(stop - first, 0)
        # however crowded the boxes, at most about _CANDIDATES at a time
        bounds = np.searchsorted(np.cumsum(count), np.arange(_CANDIDATES, int(count.sum()), _CANDIDATES))
        for runs in np.split(np.arange(len(count)), bounds + 1):
            a, b = owner[runs], first[runs]  # the runs' owners and starts, expanded below
            n = count[runs]
            a = np.repeat(a, n)
            b = np.arange(len(a)) + np.repeat(b - (np.cumsum(n) - n), n)
            # within both boxes' windows, in x, then in y and of another model: cheap tests before the IoU
            ra, rb = reach_x[a], reach_x[b]
            near = np.abs(cx[b] - cx[a]) <= np.minimum(np.minimum(ra, rb), (ra + rb) * sum_factor)
            keep = np.flatnonzero(near)
            a, b = a[keep], b[keep]
            ra, rb = reach_y[a], reach_y[b]
            near = np.abs(cy[b] - cy[a]) <= np.minimum(np.minimum(ra, rb), (ra + rb) * sum_factor)
            near &= filed_model[a] != filed_model[b]
            keep = np.flatnonzero(near)
            a, b = a[keep], b[keep]
            overlap = iou_of_corners(tuple(c[a] for c in filed_corners), tuple(c[b] for c in filed_corners))
            keep = np.flatnonzero(overlap >= threshold)
            found.append((filed[a[keep]], filed[b[keep]], overlap[keep]))
    i, j, overlap = (np.concatenate(part) for part in zip(*found))
    return np.minimum(i, j), np.maximum(i, j), overlap


def _cell_ranges(
    grids: _Grids,
    query: np.ndarray,
    key: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    reach_x: np.ndarray,
    reach_y: np.ndarray,
    area_class: np.ndarray,
    largest_class: np.ndarray,
    grid: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query box, first, stop) of the runs of positions the ``query`` boxes must compare themselves with.

    One run per (query, area class, row of cells): the cells of a row that the query's window covers are
    consecutive in the grids' order. In the query's own class only rows from its own onward count, and in its
    own row only the positions after its own.
    """
    owners, firsts, stops = [], [], []
    for step in range(int((largest_class[query] - area_class[query]).max()) + 1):
        other_class = area_class[query] + step
        wanted = other_class <= largest_class[query]
        q = query[wanted]
        target = grids.find(key[q], other_class[wanted])
        q, target = q[target >= 0], target[target >= 0]
        if not len(q):
            continue
        x_lo = grids.cell_x(target, cx[q] - reach_x[q])
        x_hi = grids.cell_x(target, cx[q] + reach_x[q])
        y_lo = gy[q] if step == 0 else grids.cell_y(target, cy[q] - reach_y[q])
        y_hi = grids.cell_y(target, cy[q] + reach_y[q])
        run, row = _expand(y_lo, np.maximum(y_hi - y_lo + 1, 0))
        q, target = q[run], target[run]
        row_base = grids.base[target] + row * grids.nx[target]
        first = grids.start[row_base + x_lo[run]]
        stop = grids.start[row_base + x_hi[run] + 1]
        if step == 0:
            first = np.where(row == gy[q], np.maximum(first, q + 1), first)
        owners.append(q)
        firsts.append(first)
        stops.append(stop)
    return np.concatenate(owners), np.concatenate(firsts), np.concatenate(stops)
