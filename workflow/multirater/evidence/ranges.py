"""``ranges.csv``: what holds over the data seeds of each setting (arm, preset, bias). No conclusion rests on
one training run, so every number is given as its range over the seeds, with counts such as "RSE better in 2
of 2 seeds".

- ``LSE - RSE`` rows, per ensemble size, metric and IoU: the range of the difference (summary.csv's
  ``difference``), in how many seeds the RSE was better (lower D-ECE or D-ECE-soft, higher mAP ...), and in how
  many either was significantly better (``significant``: the cell's two-level interval, members and images,
  excludes 0; a row with the image-only interval is never significant, ``interval`` and ``warning`` say why).
- Diagnostic rows, one per cells.csv column in ``DIAGNOSTICS``: the range of its value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.evaluation.metrics import LOWER_IS_BETTER

SETTING = ["arm", "preset", "bias"]
COLUMNS = [*SETTING, "quantity", "size", "metric", "iou", "n_seeds", "min", "max", "mean", "n_rse_better",
           "n_rse_better_significant", "n_lse_better_significant", "text"]
DIFFERENCE = "LSE - RSE"
DIAGNOSTICS = ["learned_bias_auc", "ls_score_one_rater", "inter_f1", "intra_f1", "single_ap50_mean"]


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def difference_row(rows: "Any", metric: str) -> dict[str, Any]:
    """The range row of one setting, size, metric and IoU (``rows``: its summary.csv rows, one per seed)."""
    difference = rows["difference"].to_numpy(float)
    lower_better = metric in LOWER_IS_BETTER
    rse_better = difference > 0 if lower_better else difference < 0
    lse_better = difference < 0 if lower_better else difference > 0
    significant = rows["significant"].fillna(False).astype(bool).to_numpy()
    n = len(rows)
    counts = {"n_rse_better": int(rse_better.sum()), "n_rse_better_significant": int((rse_better & significant).sum()),
              "n_lse_better_significant": int((lse_better & significant).sum())}
    span = _signed(difference.min()) if n == 1 else f"{_signed(difference.min())} to {_signed(difference.max())}"
    text = (f"{span}; RSE better in {counts['n_rse_better']} of {n} seed{'s' * (n != 1)} (significantly in "
            f"{counts['n_rse_better_significant']}), LSE significantly better in {counts['n_lse_better_significant']}")
    return {"n_seeds": n, "min": float(difference.min()), "max": float(difference.max()),
            "mean": float(difference.mean()), **counts, "text": text}


def ranges_table(summary: "Any", cells: "Any") -> "Any":
    """The ranges of ``summary`` (summary.csv) and ``cells`` (cells.csv) over their data seeds."""
    import pandas as pd

    out = []
    keys = [*SETTING, "size", "metric", "iou"]
    for key, rows in summary.groupby(keys, dropna=False, sort=False):
        setting = dict(zip(keys, key))
        out.append({**setting, "quantity": DIFFERENCE, **difference_row(rows, setting["metric"])})
    for key, rows in cells.groupby(SETTING, dropna=False, sort=False):
        for name in DIAGNOSTICS:
            if name not in rows.columns:
                continue
            values = rows[name].to_numpy(float)
            defined = values[np.isfinite(values)]
            n = len(defined)
            text = "n/a"
            if n:
                span = f"{defined.min():.3f}" if n == 1 else f"{defined.min():.3f} to {defined.max():.3f}"
                text = f"{span} over {n} of {len(values)} seed{'s' * (len(values) != 1)}"
            out.append({**dict(zip(SETTING, key)), "quantity": name, "n_seeds": n,
                        "min": float(defined.min()) if n else np.nan, "max": float(defined.max()) if n else np.nan,
                        "mean": float(defined.mean()) if n else np.nan, "text": text})
    table = pd.DataFrame(out, columns=COLUMNS)
    counts = ["size", "n_seeds", "n_rse_better", "n_rse_better_significant", "n_lse_better_significant"]
    return table.astype({c: "Int64" for c in counts})  # whole numbers, empty where they do not apply
