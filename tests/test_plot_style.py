"""The figures' theme (multirater.core.plot_style.THEME) is seaborn's "whitegrid" style in its "paper" context,
written out so that figure jobs need no seaborn: compared here with what seaborn itself sets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each side in a fresh interpreter: every rcParam that differs from matplotlib's defaults (numbers as numbers,
# the rest as text).
CHANGED = ("import json, matplotlib as mpl; print(json.dumps({k: v if isinstance(v, (int, float)) else str(v) "
           "for k, v in mpl.rcParams.items() if v != mpl.rcParamsDefault[k]}))")


def changed_settings(code: str) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-c", f"{code}\n{CHANGED}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_theme_is_seaborns_whitegrid_paper_theme_with_our_sizes_and_colours():
    ours = changed_settings("from multirater.core.plot_style import apply_style; apply_style()")
    overrides = ("{k: v for k, v in __import__('multirater.core.plot_style', fromlist=['THEME']).THEME.items()"
                 " if k in OURS}")
    ours_only = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                 "legend.fontsize", "legend.title_fontsize", "figure.dpi", "savefig.dpi", "savefig.bbox",
                 "pdf.fonttype", "axes.spines.top", "axes.spines.right")
    seaborn = changed_settings(
        "import matplotlib; matplotlib.use('Agg'); import seaborn as sns\n"
        f"OURS = {ours_only!r}\n"
        f"sns.set_theme(context='paper', style='whitegrid', rc={overrides})")
    # the colour cycle is ours (Okabe-Ito); seaborn also registers its colormap as the default (our figures
    # show RGB images only, which no colormap touches)
    def same(a, b):  # seaborn scales sizes in floating point: 1.5 * 0.8 is 1.2000000000000002
        return a == pytest.approx(b, rel=1e-12) if isinstance(b, (int, float)) else a == b

    differ = {k for k in set(ours) | set(seaborn) if not same(ours.get(k), seaborn.get(k))}
    assert differ == {"axes.prop_cycle", "image.cmap"}
    assert "'#0072B2'" in ours["axes.prop_cycle"] and "image.cmap" not in ours


def test_figure_jobs_do_not_import_seaborn_or_scipy():
    code = ("import sys; from multirater.core.plot_style import apply_style; apply_style(); "
            "import matplotlib.pyplot; print(sorted(m for m in ('seaborn', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
