"""The evidence figure: LSE - RSE D-ECE in every cell, with its two-level and image-only 95 % intervals.

One panel per IoU threshold of D-ECE; along x the cells (preset, then data seed), one marker per ensemble
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


def evidence_figure(summary: "Any") -> "Any":
    """The figure of a ``summary.csv`` table (a pandas DataFrame)."""
    apply_style()
    import matplotlib.pyplot as plt

    dece = summary[summary["metric"] == "D-ECE"]
    if dece.empty:
        raise UserError("the summary has no D-ECE rows")
    cells = list(dict.fromkeys(zip(dece["preset"], dece["data_seed"])))
    ious = sorted(dece["iou"].unique())
    sizes = sorted(dece["size"].unique())
    width = 0.6 / max(len(sizes), 1)
    fig, axes = plt.subplots(1, len(ious), figsize=(FULL_WIDTH_IN, 2.6), squeeze=False, sharey=True)
    for ax, iou in zip(axes[0], ious):
        at = dece[np.isclose(dece["iou"], iou)]
        for k, size in enumerate(sizes):
            rows = at[at["size"] == size]
            x = np.array([cells.index((p, s)) for p, s in zip(rows["preset"], rows["data_seed"])], dtype=float)
            x += (k - (len(sizes) - 1) / 2) * width
            color = OKABE_ITO[k % len(OKABE_ITO)]
            ax.vlines(x, rows["diff_p2.5"], rows["diff_p97.5"], color=color, linewidth=1.0)
            if "diff_p2.5_images" in rows:
                ax.vlines(x, rows["diff_p2.5_images"], rows["diff_p97.5_images"], color=color, linewidth=3.5,
                          alpha=0.35)
            ax.plot(x, rows["difference"], "o", markersize=3.5, color=color, label=f"size {size}")
        ax.axhline(0.0, color="0.3", linewidth=0.8, linestyle="--")
        for boundary in [i + 0.5 for i in range(len(cells) - 1) if cells[i][0] != cells[i + 1][0]]:
            ax.axvline(boundary, color="0.8", linewidth=0.8)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{p}\nseed {s}" for p, s in cells], fontsize=6)
        ax.set_title(f"D-ECE (IoU = {iou:g})")
    axes[0][0].set_ylabel("LSE − RSE D-ECE\n(> 0: RSE better calibrated)")
    axes[0][0].legend(frameon=False, title="ensemble", loc="best")
    fig.tight_layout()
    return fig
