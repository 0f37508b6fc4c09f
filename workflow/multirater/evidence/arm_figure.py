"""One arm of the mechanism study against its bias (``fig_<arm>``), and the learned-bias figure of every cell.

The arm figure, 2 x 3 panels, x = the graded preset's bias (0: the raters differ by noise, 1: by systematic
thresholds), one marker per data seed (side by side), the largest ensembles:

- LSE - RSE D-ECE against the headline label set (consensus) and D-ECE-soft (against the share of raters
  who labelled an object), at IoU 0.5 (top) and 0.75 (bottom), each with its paired 95 % interval; above 0
  the RSE is better calibrated;
- the learned-bias AUC (how well the rs models' score difference tells each rater's own objects apart; 0.5:
  no bias learned) and the LS models' mean score on objects one of two raters labelled (their rater share
  is 1/2: above it the LS models are over-confident there).

The learned-bias figure: per cell, each strategy's mean score on each rater's own objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.plot_style import FULL_WIDTH_IN, OKABE_ITO, apply_style
from multirater.evaluation.metrics import DECE, DECE_SOFT
from multirater.evidence.figure import cell_key, set_cell_ticks

DECE_PANELS = [(DECE, 0.5), (DECE_SOFT, 0.5), (DECE, 0.75), (DECE_SOFT, 0.75)]
TITLES = {DECE: f"{DECE} vs consensus", DECE_SOFT: f"{DECE_SOFT} vs raters' share"}
SEED_OFFSET = 0.03  # bias units between the markers of neighbouring seeds


def _bias_of(frame: "Any") -> np.ndarray:
    bias = frame["bias"].to_numpy(float)
    if np.isnan(bias).any():
        raise UserError("an arm figure needs every cell's bias (the graded preset)")
    return bias


def _offsets(seeds: np.ndarray) -> np.ndarray:
    order = sorted(set(seeds.tolist()))
    return np.array([(order.index(s) - (len(order) - 1) / 2) * SEED_OFFSET for s in seeds])


def arm_figure(summary: "Any", cells: "Any", arm: str) -> "Any":
    """The figure of one arm from ``summary.csv`` and ``cells.csv`` (pandas DataFrames)."""
    apply_style()
    import matplotlib.pyplot as plt

    rows = summary[summary["arm"] == arm]
    mine = cells[cells["arm"] == arm]
    if rows.empty or mine.empty:
        raise UserError(f"the summary has no cell of the arm {arm!r}")
    size = int(rows["size"].max())
    rows = rows[rows["size"] == size]
    fig, axes = plt.subplots(2, 3, figsize=(FULL_WIDTH_IN, 4.4), squeeze=False)
    dece_axes = [axes[0][0], axes[0][1], axes[1][0], axes[1][1]]
    for ax, (metric, iou) in zip(dece_axes, DECE_PANELS):
        at = rows[(rows["metric"] == metric) & np.isclose(rows["iou"].astype(float), iou)]
        ax.axhline(0.0, color="0.3", linewidth=0.8, linestyle="--")
        ax.set_title(f"{TITLES[metric]} (IoU {iou:g})")
        ax.set_xlabel("bias")
        if at.empty:
            ax.text(0.5, 0.5, f"no {metric} at IoU {iou:g}", ha="center", va="center", transform=ax.transAxes)
            continue
        x = _bias_of(at) + _offsets(at["data_seed"].to_numpy())
        for k, seed in enumerate(sorted(at["data_seed"].unique())):
            one = (at["data_seed"] == seed).to_numpy()
            color = OKABE_ITO[k % len(OKABE_ITO)]
            ax.vlines(x[one], at["diff_p2.5"][one], at["diff_p97.5"][one], color=color, linewidth=1.2)
            ax.plot(x[one], at["difference"][one], "o", markersize=3.5, color=color, label=f"seed {seed}")
    for ax in (axes[0][0], axes[1][0]):
        ax.set_ylabel(f"LSE − RSE (ensembles of {size})\n> 0: RSE better")
    for ax in axes.ravel():
        ax.set_xlim(-0.1, 1.1)
    axes[0][0].legend(frameon=False, loc="best")
    _diagnostic(axes[0][2], mine, "learned_bias_auc", "learned-bias AUC", 0.5, "0.5: no bias learned")
    _diagnostic(axes[1][2], mine, "ls_score_one_rater", "LS score, one-rater objects", 0.5, "rater share 1/2")
    fig.suptitle(f"arm {arm}", fontsize=9)
    fig.tight_layout()
    return fig


def _diagnostic(ax: "Any", cells: "Any", column: str, title: str, line: float, line_label: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("bias")
    ax.axhline(line, color="0.3", linewidth=0.8, linestyle="--", label=line_label)
    if column not in cells.columns:
        ax.text(0.5, 0.5, f"no {column}", ha="center", va="center", transform=ax.transAxes)
        return
    x = _bias_of(cells) + _offsets(cells["data_seed"].to_numpy())
    for k, seed in enumerate(sorted(cells["data_seed"].unique())):
        one = (cells["data_seed"] == seed).to_numpy()
        ax.plot(x[one], cells[column][one], "o", markersize=3.5, color=OKABE_ITO[k % len(OKABE_ITO)])
    ax.set_ylim(0.0, 1.0)
    ax.legend(frameon=False, loc="best")


def learned_bias_figure(cells: "Any") -> "Any":
    """Per cell (x), each strategy's mean score on each rater's own objects (one panel per rater), and the
    learned-bias AUC."""
    apply_style()
    import matplotlib.pyplot as plt

    raters = [c[len("n_"):-len("_only")] for c in cells.columns if c.startswith("n_") and c.endswith("_only")]
    if not raters:
        raise UserError("cells.csv has no learned-bias columns (n_<rater>_only)")
    strategies = ["ls"] + [f"rs-{r}" for r in raters]
    keys = [cell_key(r) for _, r in cells.iterrows()]
    x = np.arange(len(keys), dtype=float)
    fig, axes = plt.subplots(1, len(raters) + 1, figsize=(FULL_WIDTH_IN, 2.8), squeeze=False, sharex=True)
    width = 0.6 / len(strategies)
    for ax, rater in zip(axes[0], raters):
        for k, strategy in enumerate(strategies):
            column = f"score_{strategy}_on_{rater}_only"
            if column in cells.columns:
                ax.plot(x + (k - (len(strategies) - 1) / 2) * width, cells[column], "o", markersize=3.5,
                        color=OKABE_ITO[k % len(OKABE_ITO)], label=strategy)
        ax.set_title(f"objects only {rater} labelled")
        ax.set_ylim(0.0, 1.0)
    axes[0][0].set_ylabel("mean score of the\nselected models")
    axes[0][0].legend(frameon=False, loc="best")
    auc_ax = axes[0][-1]
    auc_ax.plot(x, cells["learned_bias_auc"], "o", markersize=3.5, color="0.2")
    auc_ax.axhline(0.5, color="0.3", linewidth=0.8, linestyle="--")
    auc_ax.set_title("learned-bias AUC")
    auc_ax.set_ylim(0.0, 1.0)
    for ax in axes[0]:
        set_cell_ticks(ax, keys)
    fig.tight_layout()
    return fig
