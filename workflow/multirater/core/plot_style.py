"""One look for every figure: a seaborn-like theme, fixed colours, and atomic PNG + PDF output.

Sizes are for a paper: a single column is about 3.5 in wide, a full page about 7 in; fonts are
8-9 pt so text stays legible when the figure is printed at that width.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import matplotlib.figure

SINGLE_COLUMN_IN = 3.5
FULL_WIDTH_IN = 7.0

# Colour-blind-safe (Okabe-Ito); the first colours go to raters 1, 2, ...
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
RATER_COLORS = OKABE_ITO[:]
MATCHED_COLOR = "#009E73"  # boxes both raters drew (matched)
ONLY_COLORS = {0: "#0072B2", 1: "#D55E00"}  # boxes only rater 1 / only rater 2 drew
STRATEGY_COLORS = {
    "LSE": "#0072B2",  # label-sampling ensemble
    "RSE": "#D55E00",  # rater-specific ensemble
    "LS": "#56B4E9",  # single label-sampling model
    "RS": "#E69F00",  # single rater-specific model
}
PROVENANCE_COLORS = {"pretrained": "#56B4E9", "manual": "#E69F00", "total": "#555555"}


def rater_colors(n: int) -> list[str]:
    """``n`` distinct colours, one per rater in order (cycles past eight)."""
    return [RATER_COLORS[i % len(RATER_COLORS)] for i in range(n)]


# The look of seaborn's "whitegrid" style in its "paper" context, written out so that a figure job does not
# import seaborn (and, through it, scipy.stats: 0.6 s of every figure job); tests/test_plot_style.py compares
# it with seaborn's own. The colour cycle is ours (Okabe-Ito).
THEME = {
    # whitegrid: light grey grid and frame behind the data, dark grey text, no ticks
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "grid.color": ".8",
    "text.color": ".15",
    "xtick.color": ".15",
    "ytick.color": ".15",
    "xtick.bottom": False,
    "ytick.left": False,
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "lines.solid_capstyle": "round",
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    # paper: line widths and tick sizes at 0.8 of matplotlib's "notebook" scale
    "axes.linewidth": 1.0,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.8,
    "patch.linewidth": 0.8,
    "xtick.major.width": 1.0,
    "ytick.major.width": 1.0,
    "xtick.minor.width": 0.8,
    "ytick.minor.width": 0.8,
    "xtick.major.size": 4.8,
    "ytick.major.size": 4.8,
    "xtick.minor.size": 3.2,
    "ytick.minor.size": 3.2,
    # ours: 8-9 pt text, print resolution, editable PDF text, no top and right frame
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def apply_style() -> None:
    """Set the Matplotlib backend (no display needed), :data:`THEME` and the colour cycle."""
    import matplotlib
    from cycler import cycler

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams.update({**THEME, "axes.prop_cycle": cycler(color=OKABE_ITO)})


def save_figure(fig: "matplotlib.figure.Figure", stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically (both or neither); close the figure."""
    import matplotlib.pyplot as plt

    from multirater.core.files import atomic_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    done: list[Path] = []
    try:
        for path in paths:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix[1:])
            done.append(path)
    except BaseException:
        for path in done:  # no half set of outputs
            if path.exists():
                os.unlink(path)
        raise
    finally:
        plt.close(fig)
    return paths
