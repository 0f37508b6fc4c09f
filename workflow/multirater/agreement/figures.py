"""Figures 1 and 2 of the paper: where raters agree on one image, and inter-rater statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from multirater.agreement.statistics import NO_SHARED_IMAGES, match_pairs
from multirater.core.plot_style import (
    FULL_WIDTH_IN,
    MATCHED_COLOR,
    PROVENANCE_COLORS,
    SINGLE_COLUMN_IN,
    apply_style,
    rater_colors,
)
from multirater.data.dataset import Dataset
from multirater.data.images import load_image

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def figure_matched_boxes(dataset: Dataset, image_id: int, iou_threshold: float = 0.5) -> Figure:
    """Figure 1: one image with the boxes two raters share (IoU >= threshold, drawn as their mean)
    and the boxes only one of them drew, one colour each. Uses the first two raters who labelled the image."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    apply_style()
    raters = dataset.raters_of(image_id)[:2]
    colors = rater_colors(len(raters))
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, SINGLE_COLUMN_IN + 0.35))
    ax.imshow(load_image(dataset.images[image_id].path), interpolation="nearest")
    ax.set_axis_off()

    def draw(box, color, style="-"):
        ax.add_patch(Rectangle(box[:2], box[2], box[3], fill=False, edgecolor=color, linewidth=1.1, linestyle=style))

    handles = []
    if len(raters) == 2:
        a, b = (dataset.boxes(r, image_id) for r in raters)
        match = match_pairs(a, b, iou_threshold)
        for i, j in enumerate(match):
            if j >= 0:
                draw((a[i] + b[j]) / 2, MATCHED_COLOR)
        for i in np.where(match < 0)[0]:
            draw(a[i], colors[0], "--")
        for j in sorted(set(range(len(b))) - set(match[match >= 0].tolist())):
            draw(b[j], colors[1], "--")
        n_match = int((match >= 0).sum())
        handles.append(Line2D([], [], color=MATCHED_COLOR, label=f"matched (IoU ≥ {iou_threshold:g}): {n_match}"))
        handles.append(Line2D([], [], color=colors[0], ls="--", label=f"only {raters[0]}: {int((match < 0).sum())}"))
        handles.append(Line2D([], [], color=colors[1], ls="--", label=f"only {raters[1]}: {len(b) - n_match}"))
    else:  # one rater: just their boxes
        for box in dataset.boxes(raters[0], image_id):
            draw(box, colors[0])
        handles.append(Line2D([], [], color=colors[0], label=raters[0]))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, frameon=False)
    ax.set_title(f"Image {image_id}: {dataset.images[image_id].file_name}")
    return fig


def figure_interrater(counts: pd.DataFrame, f1: pd.DataFrame) -> Figure:
    """Figure 2: (a) mean objects per image per rater: retained from the pretrained model, added by
    hand, and total (error bars: std over images); (b) F1 between raters vs IoU threshold (std error
    bars), and, for raters with a second pass, F1 between their two passes (dashed, the rater's colour)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    apply_style()
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(FULL_WIDTH_IN, 2.6), gridspec_kw={"width_ratios": [1, 1.2]})

    long = pd.concat([
        counts.assign(kind="retained", n=counts["n_retained"]),
        counts.assign(kind="added", n=counts["n_added"]),
        counts.assign(kind="total", n=counts["n_objects"]),
    ])
    raters = list(dict.fromkeys(counts["rater"]))
    colors = rater_colors(len(raters))
    kinds = ["retained", "added", "total"]
    width = 0.8 / max(len(raters), 1)
    for k, rater in enumerate(raters):
        sub = long[long["rater"] == rater].groupby("kind")["n"]
        mean, std = sub.mean().reindex(kinds), sub.std(ddof=1).reindex(kinds).fillna(0.0)
        x = np.arange(len(kinds)) + (k - (len(raters) - 1) / 2) * width
        ax_a.bar(x, mean.values, width, yerr=std.values, color=colors[k], label=rater,
                 error_kw={"elinewidth": 0.8, "capsize": 2})
    ax_a.set_xticks(np.arange(len(kinds)), ["retained\n(pretrained)", "added\n(manual)", "total"])
    ax_a.set_ylabel("objects per image")
    ax_a.set_title("a  Objects per image", loc="left")
    ax_a.legend(frameon=False)
    ax_a.tick_params(axis="x", colors="black")
    for label, kind in zip(ax_a.get_xticklabels(), kinds):
        label.set_color(PROVENANCE_COLORS[{"retained": "pretrained", "added": "manual"}.get(kind, "total")])

    has_intra = _draw_f1_curves(ax_b, f1, dict(zip(raters, colors)))
    ax_b.set_xlabel("IoU threshold")
    ax_b.set_ylabel("F1 between raters" + (" / passes" if has_intra else ""))
    ax_b.set_ylim(0, 1.02)
    ax_b.set_xticks(np.round(np.arange(0.1, 0.91, 0.1), 1))
    ax_b.set_title("b  Inter- and intra-rater agreement" if has_intra else "b  Inter-rater agreement", loc="left")
    fig.tight_layout()
    return fig


def _draw_f1_curves(ax, f1: pd.DataFrame, rater_color: dict[str, str]) -> bool:
    """F1 vs IoU: one solid curve per pair of raters, one dashed curve per rater with two passes
    (rows with rater_a == rater_b). Returns whether any intra-rater curve was drawn."""
    pairs = list(dict.fromkeys(zip(f1["rater_a"], f1["rater_b"])))
    inter = [(a, b) for a, b in pairs if a != b]
    intra = [a for a, b in pairs if a == b]
    pair_colors = rater_colors(len(inter) + 2)[2:] if len(inter) > 1 else ["#333333"]
    style = {"marker": "o", "markersize": 3, "capsize": 2, "linewidth": 1.2, "elinewidth": 0.8}
    for k, (a, b) in enumerate(inter):
        sub = f1[(f1["rater_a"] == a) & (f1["rater_b"] == b)]
        ax.errorbar(sub["iou"], sub["f1_mean"], yerr=sub["f1_std"], color=pair_colors[k % len(pair_colors)],
                    label=f"{a} vs {b}", **style)
    for rater in intra:
        sub = f1[(f1["rater_a"] == rater) & (f1["rater_b"] == rater)]
        ax.errorbar(sub["iou"], sub["f1_mean"], yerr=sub["f1_std"], color=rater_color.get(rater, "#777777"),
                    linestyle="--", label=f"{rater}, pass 1 vs 2", **style)
    if pairs:
        ax.legend(frameon=False, loc="lower left")
    else:  # raters on different images: nothing to draw, and the panel says why
        ax.text(0.5, 0.5, f"{NO_SHARED_IMAGES}:\nno agreement to measure", ha="center", va="center",
                transform=ax.transAxes)
    return bool(intra)
