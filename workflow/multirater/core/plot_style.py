"""One look for every figure: seaborn styling, fixed colours, and atomic PNG + PDF output.

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


def apply_style() -> None:
    """Set the Matplotlib backend (no display needed) and the shared seaborn theme."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import seaborn as sns

    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.0,
        rc={
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
            "pdf.fonttype": 42,  # editable text in PDFs
            "axes.spines.top": False,
            "axes.spines.right": False,
        },
    )


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
