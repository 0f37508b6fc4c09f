"""Figure 5: D-ECE against training cost, per approach (one model, the largest ensembles), uncalibrated and
after each post-hoc calibrator, from the calibration table (``multirater calibration-table``).

One panel per D-ECE IoU threshold. x: the approach's training time (hours, log scale); every variant of an
approach shares it and is drawn a little apart so the points do not hide each other. y: D-ECE with its
bootstrap standard deviation; a grey bar behind each point spans the finite-sample reference (p2.5-p97.5 of
the D-ECE of a perfectly calibrated detector with the same scores), when the table has it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from multirater.core.plot_style import FULL_WIDTH_IN, OKABE_ITO, STRATEGY_COLORS, apply_style
from multirater.core.strategies import ENSEMBLE_KINDS, LS, strategy_label

NEEDED_COLUMNS = ("approach", "method", "target", "training_hours")
APPROACH_COLORS = {LS: STRATEGY_COLORS[strategy_label(LS)],
                   **{kind: STRATEGY_COLORS[spec.label] for kind, spec in ENSEMBLE_KINDS.items()}}
RS_COLORS = [STRATEGY_COLORS["RS"], OKABE_ITO[2], OKABE_ITO[3], OKABE_ITO[7], OKABE_ITO[6]]
MARKERS = ["s", "^", "D", "v", "P", "X", "*", "<", ">", "h"]
REFERENCE_COLOR = "0.8"
SPREAD = 1.05  # factor between neighbouring variants of one approach on the log x axis


def dece_columns(table: Any) -> list[tuple[float, str]]:
    """(IoU, column) of every D-ECE point-estimate column (``D-ECE@<iou>``), ascending IoU."""
    out = [(float(c[len("D-ECE@"):]), c) for c in table.columns if c.startswith("D-ECE@") and "_" not in c]
    return sorted(out)


def variant_label(method: Any, target: Any) -> str:
    """``uncalibrated`` or ``<method>-<target>``."""
    target = "" if target is None or (isinstance(target, float) and math.isnan(target)) else str(target)
    return str(method) + (f"-{target}" if target else "")


def approach_colors(approaches: list[str]) -> dict[str, str]:
    """One colour per approach: the shared strategy colours, rater-specific models in turn."""
    colors, rs = {}, 0
    for name in approaches:
        if name in APPROACH_COLORS:
            colors[name] = APPROACH_COLORS[name]
        else:
            colors[name] = RS_COLORS[rs % len(RS_COLORS)]
            rs += 1
    return colors


def calibration_cost_figure(table: Any) -> Any:
    """The figure (module docstring) of a calibration table (a pandas DataFrame)."""
    apply_style()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = table.to_dict("records")
    approaches = list(dict.fromkeys(r["approach"] for r in rows))
    variants = list(dict.fromkeys(variant_label(r["method"], r["target"]) for r in rows))
    colors = approach_colors(approaches)
    markers = {v: ("o" if v == "uncalibrated" else MARKERS[i % len(MARKERS)])
               for i, v in enumerate(v for v in variants if v != "uncalibrated")}
    markers.setdefault("uncalibrated", "o")
    columns = dece_columns(table)
    fig, axes = plt.subplots(1, len(columns), figsize=(FULL_WIDTH_IN, 2.9), squeeze=False)
    hours = np.array([float(r["training_hours"]) for r in rows], dtype=float)
    known = np.isfinite(hours) & (hours > 0)
    for ax, (iou, column) in zip(axes[0], columns):
        for row, h, ok in zip(rows, hours, known):
            if not ok:
                continue
            variant = variant_label(row["method"], row["target"])
            x = h * SPREAD ** (variants.index(variant) - (len(variants) - 1) / 2)
            low, high = row.get("D-ECE_reference_p2.5"), row.get("D-ECE_reference_p97.5")
            if low is not None and high is not None and np.isfinite([low, high]).all():
                ax.plot([x, x], [low, high], color=REFERENCE_COLOR, linewidth=3, solid_capstyle="butt", zorder=1)
            filled = variant != "uncalibrated"
            ax.errorbar(x, row[column], yerr=_finite(row.get(f"{column}_std")), color=colors[row["approach"]],
                        marker=markers[variant], markersize=5, linestyle="none", elinewidth=0.8, capsize=1.5,
                        markerfacecolor=colors[row["approach"]] if filled else "white", zorder=3)
        ax.set_xscale("log")
        # plain numbers: training times span little more than one decade
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training time (h, the approach's training jobs)")
        ax.set_ylabel(f"D-ECE (IoU {iou:g})")
        ax.set_ylim(bottom=0)
        ax.set_title(f"D-ECE at IoU {iou:g} against training cost")
    if not known.any():
        for ax in axes[0]:
            ax.text(0.5, 0.5, "no training timings (results/benchmarks/train)", ha="center", va="center",
                    transform=ax.transAxes)
    handles = [Line2D([], [], color=colors[a], marker="o", linestyle="none", label=a) for a in approaches]
    handles += [Line2D([], [], color="0.3", marker=markers[v], linestyle="none", label=v,
                       markerfacecolor="white" if v == "uncalibrated" else "0.3") for v in variants]
    handles.append(Line2D([], [], color=REFERENCE_COLOR, linewidth=4, label="perfect-calibration reference"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.06 * math.ceil(len(handles) / 5)))
    fig.tight_layout()
    return fig


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(float(value)) else None
