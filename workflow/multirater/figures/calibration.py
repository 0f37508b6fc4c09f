"""Figures 3 and 4 of the paper: reliability diagrams of LSE vs RSE, and D-ECE / mAP vs ensemble size.

Both draw from the workflow's files (metrics JSON, the tidy metrics table) and return a Matplotlib
figure; ``save_figure`` from the shared style writes it as PNG and PDF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.core.plot_style import FULL_WIDTH_IN, STRATEGY_COLORS, apply_style
from multirater.core.strategies import ENSEMBLE_KINDS, LSE, RSE

PRECISION_COLOR = "#0072B2"  # the paper's blue bars
GAP_COLOR = "#D55E00"  # the paper's red gap bars


def _reliability_bins(metrics: dict[str, Any], iou: float) -> list[dict[str, Any]]:
    table = metrics.get("reliability") or {}
    for key, bins in table.items():
        if abs(float(key) - iou) < 1e-9:
            return bins
    return []


def _dece(metrics: dict[str, Any], iou: float) -> float | None:
    for m in metrics.get("metrics", []):
        if m.get("metric") == "D-ECE" and m.get("iou") is not None and abs(float(m["iou"]) - iou) < 1e-9:
            return float(m["value"])
    return None


def reference_text(metrics: dict[str, Any]) -> str | None:
    """The finite-sample D-ECE reference of a metrics file as a panel line ("perfectly calibrated:
    0.031-0.072", its 95 % range), or None when the file has none."""
    reference = metrics.get("dece_reference") or {}
    low, high = reference.get("p2.5"), reference.get("p97.5")
    if low is None or high is None:
        return None
    return f"perfectly calibrated: {float(low):.3f}-{float(high):.3f}"


def reliability_ious(*metrics: dict[str, Any]) -> list[float]:
    """The IoU thresholds with a reliability table in every given metrics file, ascending."""
    sets = [{round(float(k), 6) for k in (m.get("reliability") or {})} for m in metrics]
    return sorted(set.intersection(*sets)) if sets else []


def draw_reliability(ax: Any, bins: list[dict[str, Any]], dece: float | None, title: str,
                     reference: str | None = None) -> None:
    """One reliability diagram: precision per confidence bin (bars), the gap to the diagonal (red),
    the diagonal of perfect calibration, and the D-ECE in the panel, with the ``reference`` line under
    it (:func:`reference_text`). Empty bins draw nothing."""
    lower = np.array([b["lower"] for b in bins], dtype=float)
    upper = np.array([b["upper"] for b in bins], dtype=float)
    count = np.array([b.get("count", 0) for b in bins], dtype=float)
    filled = count > 0
    precision = np.array([b.get("precision") if b.get("precision") is not None else np.nan for b in bins], dtype=float)
    confidence = np.array([b.get("confidence") if b.get("confidence") is not None else np.nan for b in bins],
                          dtype=float)
    width = upper - lower
    ax.bar(lower[filled], precision[filled], width=width[filled], align="edge", color=PRECISION_COLOR,
           edgecolor="white", linewidth=0.5, label="precision")
    gap = confidence[filled] - precision[filled]
    ax.bar(lower[filled], gap, bottom=precision[filled], width=width[filled], align="edge", color=GAP_COLOR,
           alpha=0.45, edgecolor=GAP_COLOR, linewidth=0.5, label="gap")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=0.8, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_title(title)
    if dece is not None:
        ax.text(0.04, 0.95, f"D-ECE = {dece:.3f}", transform=ax.transAxes, ha="left", va="top",
                bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "0.7", "linewidth": 0.5})
    if reference is not None:
        ax.text(0.04, 0.85, reference, transform=ax.transAxes, ha="left", va="top", fontsize=6, color="0.25",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})


def reliability_figure(lse: dict[str, Any], rse: dict[str, Any], size: int | None = None) -> "Any":
    """Figure 3: one column per strategy (LSE, RSE), one row per IoU threshold."""
    apply_style()
    import matplotlib.pyplot as plt

    ious = reliability_ious(lse, rse)
    if not ious:
        from multirater.core.errors import UserError

        raise UserError("the metrics files share no reliability table (evaluate with --bins and --iou)")
    side = FULL_WIDTH_IN / 2.4
    fig, axes = plt.subplots(len(ious), 2, figsize=(FULL_WIDTH_IN * 0.8, side * len(ious) + 0.4),
                             squeeze=False, sharex=True, sharey=True)
    suffix = f" ({size} models)" if size else ""
    for row, iou in enumerate(ious):
        for col, (name, metrics) in enumerate(((ENSEMBLE_KINDS[LSE].label, lse), (ENSEMBLE_KINDS[RSE].label, rse))):
            ax = axes[row][col]
            draw_reliability(ax, _reliability_bins(metrics, iou), _dece(metrics, iou), f"{name}{suffix}, IoU = {iou:g}",
                             reference_text(metrics))
            if row == len(ious) - 1:
                ax.set_xlabel("confidence")
            if col == 0:
                ax.set_ylabel("precision")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def draw_reference_band(ax: Any, rows: "Any", x: "Any", color: str, label: str) -> None:
    """Shade the finite-sample D-ECE reference (``ref_p2.5`` .. ``ref_p97.5`` of the rows) along ``x``:
    a D-ECE inside it cannot be told from perfect calibration. Nothing when the table has no reference."""
    band = ["ref_p2.5", "ref_p97.5"]
    if not set(band) <= set(rows.columns) or rows[band].isna().to_numpy().all():
        return
    x = np.asarray(x, dtype=float)
    low, high = rows["ref_p2.5"].to_numpy(float), rows["ref_p97.5"].to_numpy(float)
    if len(x) == 1:  # one size: a short band around its point
        x, low, high = np.r_[x - 0.25, x + 0.25], np.repeat(low, 2), np.repeat(high, 2)
    ax.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0, label=label)


def ensemble_size_figure(table: "Any") -> "Any":
    """Figure 4: D-ECE (one panel per IoU) and mAP against ensemble size, LSE and RSE; points are the
    bootstrap mean with std error bars (the test-set value, without bars, if there was no bootstrap).
    D-ECE panels shade each kind's finite-sample reference band (``ref_p2.5`` .. ``ref_p97.5``) when the
    table has one."""
    apply_style()
    import matplotlib.pyplot as plt
    import pandas as pd

    ens = table[table["kind"].isin(list(ENSEMBLE_KINDS))].copy()
    if ens.empty:
        from multirater.core.errors import UserError

        raise UserError(f"the metrics table has no ensemble rows (kind {' or '.join(ENSEMBLE_KINDS)})")
    ens["iou"] = pd.to_numeric(ens["iou"], errors="coerce")
    panels = [("D-ECE", float(i)) for i in sorted(ens.loc[ens["metric"] == "D-ECE", "iou"].dropna().unique())]
    panels.append(("mAP", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(FULL_WIDTH_IN, 2.3), squeeze=False)
    sizes = sorted(ens["size"].unique())
    step = float(np.min(np.diff(sizes))) if len(sizes) > 1 else 1.0
    for ax, (metric, iou) in zip(axes[0], panels):
        sel = ens[ens["metric"] == metric]
        sel = sel[sel["iou"].isna()] if iou is None else sel[np.isclose(sel["iou"], iou)]
        for offset, kind in ((-0.08, LSE), (0.08, RSE)):
            label = ENSEMBLE_KINDS[kind].label
            rows = sel[sel["kind"] == kind].sort_values("size")
            if rows.empty:
                continue
            has_boot = rows["mean"].notna().all()
            y = rows["mean"] if has_boot else rows["value"]
            err = rows["std"] if has_boot else None
            ax.errorbar(rows["size"] + offset * step, y, yerr=err, marker="o", markersize=3, capsize=2,
                        linewidth=1, color=STRATEGY_COLORS[label], label=label)
            if metric == "D-ECE":
                draw_reference_band(ax, rows, rows["size"] + offset * step, STRATEGY_COLORS[label],
                                    f"{label} perfectly calibrated (95 %)")
        ax.set_xticks(sizes)
        ax.set_xlabel("ensemble size")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} (IoU = {iou:g})" if iou is not None else f"{metric} (IoU 0.50:0.95)")
    # below the panels: with the reference bands the legend would cover the points
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
