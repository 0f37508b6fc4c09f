"""The contact sheet: the top-K uncertain boxes cropped from their images, each with its score and votes, in
rank order: what a rater would look at first.

Each crop is a square around the box, with a margin of half its longer side (at least 8 px), read window by
window where the file allows (``training.image_windows``: a 6000 px TIFF is not decoded whole for a 50 px
crop), contrast stretched on its own (1st to 99.5th percentile), the box drawn on it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from multirater.review.image_files import ImageFiles
from multirater.review.ranking import UNCERTAINTY

COLUMNS = 5
TILE_IN = (2.3, 2.75)  # width, height of one crop with its caption
MIN_MARGIN_PX = 8
BOX_COLOR = "#D55E00"  # Okabe-Ito vermillion: visible on grey microscopy
NAME_CHARS = 24


def crop_window(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in whole pixels: a square around the box, its longer side plus a margin of half that
    side (at least ``MIN_MARGIN_PX``) each way, cut to the image."""
    x, y, w, h = box
    half = 0.5 * max(w, h) + max(0.5 * max(w, h), MIN_MARGIN_PX)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    x1, y1 = min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _stretched(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) in [0, 1], contrast stretched to the crop's own 1st..99.5th percentile."""
    low, high = np.percentile(pixels, [1.0, 99.5])
    return np.clip((pixels - low) / max(high - low, 1e-6), 0.0, 1.0)


def read_crops(top: pd.DataFrame, files: ImageFiles) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """(pixels (H, W, 3), window) of every row of ``top``; each image is opened once."""
    from multirater.training.image_windows import open_windows

    crops: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]] = {}
    for image_id, rows in top.groupby("image_id", sort=False):
        reader = open_windows(files.path(int(image_id)))
        try:
            for k, row in rows.iterrows():
                window = crop_window((row.x, row.y, row.w, row.h), reader.width, reader.height)
                crops[k] = (reader.read_array(window).transpose(1, 2, 0), window)
        finally:
            reader.close()
    return [crops[k] for k in top.index]


def caption(row: pd.Series, models: dict[str, int]) -> str:
    """Three lines: rank and image, score and p(1 - p), votes per source (n of that source's models)."""
    name = str(row.file_name)
    name = name if len(name) <= NAME_CHARS else "..." + name[-(NAME_CHARS - 3):]
    lines = [f"#{row['rank']}  {name}", f"p = {row.score:.2f}   p(1-p) = {row[UNCERTAINTY]:.3f}"]
    if models:
        lines.append("votes " + "  ".join(
            f"{source} {int(row[f'votes_{source}'])}" + (f"/{n}" if n else "") for source, n in models.items()))
    return "\n".join(lines)


def write_contact_sheet(path: Path, top: pd.DataFrame, files: ImageFiles, models: dict[str, int]) -> None:
    """Draw the rows of ``top`` (boxes.csv's first K rows) into the PNG ``path``."""
    from multirater.core.plot_style import apply_style

    apply_style()
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    crops = read_crops(top, files)
    n = max(len(top), 1)
    columns = min(COLUMNS, n)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(TILE_IN[0] * columns, TILE_IN[1] * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row), (pixels, (x0, y0, x1, y1)) in zip(axes.ravel(), top.iterrows(), crops):
        ax.imshow(_stretched(pixels), extent=(x0, x1, y1, y0), interpolation="nearest")
        ax.add_patch(Rectangle((row.x, row.y), row.w, row.h, fill=False, edgecolor=BOX_COLOR, linewidth=1.6))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
        ax.set_title(caption(row, models), fontsize=7, loc="left")
    if top.empty:
        axes[0, 0].text(0.5, 0.5, "no detections to review", ha="center", va="center", fontsize=9)
    fig.suptitle(f"The {len(top)} most uncertain boxes, most uncertain first: the ensemble's score p, its expected "
                 "disagreement p(1-p), and how many of each source's models voted for it", fontsize=8, wrap=True)
    try:
        fig.savefig(path, format="png", dpi=120)
    finally:
        plt.close(fig)
