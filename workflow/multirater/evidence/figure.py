"""The evidence figure: LSE - RSE D-ECE in every cell, with its two-level and image-only 95 % intervals.

One panel per D-ECE kind (against the headline label set; D-ECE-soft, against the raters' own test labels,
where the cells have it) and IoU threshold; along x the cells (in summary order), one marker per ensemble
size. The thin line is the two-level interval (members and test images, where the cell's pool can vary the
members), the thick pale bar the image-only one (the trained models held fixed); where a size has no member
variation the two coincide. Above 0 the RSE is better calibrated than the LSE of the same size; an interval
crossing 0 cannot tell them apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.plot_style import FULL_WIDTH_IN, OKABE_ITO, apply_style
from multirater.evaluation.metrics import DECE, DECE_SOFT

KINDS = (DECE, DECE_SOFT)  # the panels' metrics (multirater.evaluation.metrics)


def cell_key(row: "Any") -> tuple:
    """A cell's identity in a summary or cells table row: (arm, preset, bias, data seed)."""
    arm = row["arm"] if isinstance(row["arm"], str) else ""
    bias = None if row["bias"] is None or (isinstance(row["bias"], float) and np.isnan(row["bias"])) \
        else float(row["bias"])
    return arm, row["preset"], bias, int(row["data_seed"])


def cell_label(key: tuple) -> str:
    """Tick label of a cell: its arm (if any), preset or bias, and seed."""
    arm, preset, bias, seed = key
    what = preset if bias is None else f"bias {bias:g}"
    return "\n".join(([arm] if arm else []) + [what, f"seed {seed}"])


# more cells than this along one panel's x axis: one-line labels turned upright, which do not overlap
STACKED_LABELS_UP_TO = 6


def set_cell_ticks(ax: "Any", keys: list[tuple]) -> None:
    """One tick per cell at x = 0, 1, ...: stacked label lines for a few cells, one upright line for many."""
    ax.set_xticks(range(len(keys)))
    if len(keys) <= STACKED_LABELS_UP_TO:
        ax.set_xticklabels([cell_label(k) for k in keys], fontsize=6)
    else:
        ax.set_xticklabels([cell_label(k).replace("\n", " ") for k in keys], fontsize=6, rotation=90)


def evidence_figure(summary: "Any") -> "Any":
    """The figure of a ``summary.csv`` table (a pandas DataFrame)."""
    apply_style()
    import matplotlib.pyplot as plt

    dece = summary[summary["metric"].isin(KINDS)]
    if dece.empty:
        raise UserError("the summary has no D-ECE rows")
    keys = [cell_key(r) for _, r in dece.iterrows()]
    cells = list(dict.fromkeys(keys))
    position = np.array([cells.index(k) for k in keys], dtype=float)
    panels = [(m, i) for m in KINDS for i in sorted(dece.loc[dece["metric"] == m, "iou"].unique())]
    sizes = sorted(dece["size"].unique())
    width = 0.6 / max(len(sizes), 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(FULL_WIDTH_IN, 2.6), squeeze=False, sharey=True)
    for ax, (metric, iou) in zip(axes[0], panels):
        for k, size in enumerate(sizes):
            at = ((dece["metric"] == metric) & np.isclose(dece["iou"], iou) & (dece["size"] == size)).to_numpy()
            rows = dece[at]
            x = position[at] + (k - (len(sizes) - 1) / 2) * width
            color = OKABE_ITO[k % len(OKABE_ITO)]
            ax.vlines(x, rows["diff_p2.5"], rows["diff_p97.5"], color=color, linewidth=1.0)
            if "diff_p2.5_images" in rows:
                ax.vlines(x, rows["diff_p2.5_images"], rows["diff_p97.5_images"], color=color, linewidth=3.5,
                          alpha=0.35)
            ax.plot(x, rows["difference"], "o", markersize=3.5, color=color, label=f"size {size}")
        ax.axhline(0.0, color="0.3", linewidth=0.8, linestyle="--")
        for boundary in [i + 0.5 for i in range(len(cells) - 1) if cells[i][:3] != cells[i + 1][:3]]:
            ax.axvline(boundary, color="0.8", linewidth=0.8)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        set_cell_ticks(ax, cells)
        ax.set_title(f"{metric} (IoU = {iou:g})")
    axes[0][0].set_ylabel("LSE − RSE D-ECE\n(> 0: RSE better calibrated)")
    axes[0][0].legend(frameon=False, title="ensemble", loc="best")
    fig.tight_layout()
    return fig
