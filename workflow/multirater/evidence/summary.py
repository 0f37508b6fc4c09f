"""The evidence's tables: LSE vs RSE in every cell (``summary.csv``), what each cell's data and models were
like (``cells.csv``), the ranges over data seeds (``ranges.csv``, ``evidence.ranges``) and where each cell ran
(``runs.csv``).

A cell is identified by its own config file (``config.yaml``: ``dataset.synthetic.preset``, ``bias`` and
``seed``, and ``evidence.arm``), never by its folder's name. Per ensemble size and metric (D-ECE against the
headline label set, D-ECE-soft against the raters' own test labels where the cell has them, mAP, ...),
``summary.csv`` holds the test-set values of the LSE and the RSE (``tables/metrics.csv``), their difference
LSE - RSE, the paired 95 % interval of the difference and its p-value (``tables/lse_vs_rse.csv``: its generic
columns, whichever bootstrap they come from, named in ``interval``; the image-only interval's
``_images`` columns where the table has them), and each ensemble's finite-sample D-ECE reference band (D-ECE
rows). For D-ECE (lower is better) a difference above 0 means the RSE is better calibrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_json, read_yaml
from multirater.evidence.design import CELL_CONFIG, RESULTS, RUN_RECORD

IDENTITY = ["arm", "preset", "bias", "data_seed"]
IMAGE_INTERVAL = ["diff_p2.5_images", "diff_p97.5_images", "p_value_images"]
REFERENCE = ["ref_mean_lse", "ref_p2.5_lse", "ref_p97.5_lse", "ref_mean_rse", "ref_p2.5_rse", "ref_p97.5_rse"]
SUMMARY_COLUMNS = [*IDENTITY, "size", "metric", "iou", "lse", "rse", "difference", "diff_p2.5", "diff_p97.5",
                   "p_value", "significant", "interval", *IMAGE_INTERVAL, *REFERENCE]
CELL_COLUMNS = [*IDENTITY, "inter_f1", "intra_f1", "single_models", "single_ap50_min", "single_ap50_mean",
                "single_map_mean", "ensemble_size", "lse_score_std", "rse_score_std",
                "rse_share_boxed_by_one_rater_only"]
RUN_COLUMNS = [*IDENTITY, "cores", "minutes", "commit", "python", "torch", "cpu_capability"]
# Agreement and diversity are read at these: F1 at IoU 0.5 (the paper's Fig. 2), and the fused detections
# of the largest ensembles scoring at least 0.2 (those that matter for calibration).
AGREEMENT_IOU = 0.5
SCORE_FLOOR = 0.2
# lse_vs_rse.csv before it named its interval: the paired bootstrap over the test images.
DEFAULT_INTERVAL = "images"


def cell_identity(folder: str | Path) -> tuple[str, str, float | None, int]:
    """(arm, preset, bias, data seed) of a cell, from its config file; arm "" and bias None where unset."""
    path = Path(folder) / CELL_CONFIG
    config = read_yaml(path) or {}
    synthetic = (config.get("dataset") or {}).get("synthetic") or {}
    if "preset" not in synthetic or "seed" not in synthetic:
        raise UserError("needs dataset.synthetic.preset and seed (an evidence cell's config)", path)
    bias = synthetic.get("bias")
    arm = (config.get("evidence") or {}).get("arm")
    return str(arm or ""), str(synthetic["preset"]), None if bias is None else float(bias), int(synthetic["seed"])


def _identity_row(folder: str | Path) -> dict[str, Any]:
    arm, preset, bias, seed = cell_identity(folder)
    return {"arm": arm, "preset": preset, "bias": np.nan if bias is None else bias, "data_seed": seed}


def _order(folder: str | Path) -> tuple:
    arm, preset, bias, seed = cell_identity(folder)
    return arm, preset, -1.0 if bias is None else bias, seed


def _read_csv(path: Path) -> "Any":
    import pandas as pd

    if not path.is_file():
        raise UserError("not found: the cell's workflow has not finished", path)
    return pd.read_csv(path)


def _same_iou(a: "Any", b: float | None) -> "Any":
    return a.isna() if b is None or (isinstance(b, float) and np.isnan(b)) else np.isclose(a, b)


def summary_rows(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of ``summary.csv`` for one cell, in the order of its ``lse_vs_rse.csv``."""
    identity = _identity_row(folder)
    tables = Path(folder) / RESULTS / "tables"
    metrics, comparison = _read_csv(tables / "metrics.csv"), _read_csv(tables / "lse_vs_rse.csv")
    rows = []
    for _, c in comparison.iterrows():
        value = {}
        for kind in ("lse", "rse"):
            match = metrics[(metrics["kind"] == kind) & (metrics["size"] == c["size"])
                            & (metrics["metric"] == c["metric"]) & _same_iou(metrics["iou"], c["iou"])]
            if len(match) != 1:
                raise UserError(f"has {len(match)} rows for {kind} {c['size']} {c['metric']} (IoU {c['iou']})",
                                tables / "metrics.csv")
            value[kind] = float(match["value"].iloc[0])
        # significant at 0.05, as lse_vs_rse.csv says (an older table without the column: from its p-value)
        significant = c.get("significant")
        if significant is None or (isinstance(significant, float) and np.isnan(significant)):
            significant = bool(c["p_value"] < 0.05) if np.isfinite(c["p_value"]) else np.nan
        rows.append({**identity, "size": int(c["size"]), "metric": c["metric"], "iou": c["iou"],
                     "lse": value["lse"], "rse": value["rse"], "difference": value["lse"] - value["rse"],
                     "diff_p2.5": c["diff_p2.5"], "diff_p97.5": c["diff_p97.5"], "p_value": c["p_value"],
                     "significant": significant, "interval": c.get("interval", DEFAULT_INTERVAL),
                     **{k: c.get(k, np.nan) for k in [*IMAGE_INTERVAL, *REFERENCE]}})
    return rows


def one_rater_share(fused: dict[str, Any], floor: float = SCORE_FLOOR) -> float:
    """Share of the fused detections scoring at least ``floor`` whose group holds boxes of one rater's models
    only (their ``votes`` name one rater): no model of another rater output any box there, at any score down
    to the models' score threshold. NaN if none scores so."""
    votes = [d.get("votes") or {} for d in fused.get("detections", []) if d["score"] >= floor]
    if not votes:
        return float("nan")
    return sum(1 for v in votes if sum(1 for n in v.values() if n > 0) == 1) / len(votes)


def score_spread(fused: dict[str, Any], floor: float = SCORE_FLOOR) -> float:
    """Mean ``score_std`` (the spread of the members' scores, absent members scoring 0) of the fused
    detections scoring at least ``floor``: how much the members disagree. NaN if none scores so."""
    spread = [d["score_std"] for d in fused.get("detections", []) if d["score"] >= floor and "score_std" in d]
    return float(np.mean(spread)) if spread else float("nan")


def _read_fused(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError("not found: the cell's workflow has not finished", path)
    return read_json(path)


def _agreement(path: Path, kind: str) -> float:
    table = _read_csv(path)
    at = table[np.isclose(table["iou"], AGREEMENT_IOU)]
    if "agreement" in table.columns:
        at = at[at["agreement"] == kind]
    elif kind == "intra":
        return float("nan")
    return float(at["f1_mean"].mean()) if len(at) else float("nan")


def learned_bias_row(folder: str | Path) -> dict[str, Any]:
    """The cell's ``tables/learned_bias.csv`` (the learned-bias diagnostic), as one row."""
    table = _read_csv(Path(folder) / RESULTS / "tables" / "learned_bias.csv")
    if len(table) != 1:
        raise UserError(f"has {len(table)} rows, expected one", Path(folder) / RESULTS / "tables" / "learned_bias.csv")
    return table.iloc[0].to_dict()


def cell_row(folder: str | Path) -> dict[str, Any]:
    """One row of ``cells.csv``: the raters' agreement, the single models' consensus AP50 and mAP, the
    diversity of the largest ensembles (members' score spread; RSE detections of one rater's models only) and
    the learned-bias diagnostic (``evaluation.learned_bias``)."""
    results = Path(folder) / RESULTS
    metrics = _read_csv(results / "tables" / "metrics.csv")
    single = metrics[metrics["kind"] == "single"]
    ap50 = single.loc[single["metric"] == "AP50", "value"].to_numpy(float)
    size = int(metrics.loc[metrics["kind"] == "rse", "size"].max())
    lse, rse = (_read_fused(results / "ensembles" / kind / str(size) / "fused.json") for kind in ("lse", "rse"))
    return {**_identity_row(folder),
            "inter_f1": _agreement(results / "agreement" / "f1_vs_iou.csv", "inter"),
            "intra_f1": _agreement(results / "agreement" / "f1_vs_iou.csv", "intra"),
            "single_models": len(ap50), "single_ap50_min": float(ap50.min()), "single_ap50_mean": float(ap50.mean()),
            "single_map_mean": float(single.loc[single["metric"] == "mAP", "value"].mean()),
            "ensemble_size": size, "lse_score_std": score_spread(lse), "rse_score_std": score_spread(rse),
            "rse_share_boxed_by_one_rater_only": one_rater_share(rse), **learned_bias_row(folder)}


def run_row(folder: str | Path) -> dict[str, Any] | None:
    """Where and how long a cell ran (its ``run.json``), or None without one."""
    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        return None
    run = read_json(path)
    return {**_identity_row(folder), "cores": run.get("cores"), "minutes": round(run["seconds"] / 60, 1),
            **{k: run.get(k) for k in RUN_COLUMNS[6:]}}


def calibration_rows(folders: list[str | Path]) -> "Any":
    """Every cell's ``tables/calibration.csv`` (post-hoc calibration side by side), one table with the cell's
    identity in front; None when no cell calibrated. Cells that calibrated must all have one."""
    import pandas as pd

    paths = [Path(f) / RESULTS / "tables" / "calibration.csv" for f in folders]
    if not any(p.is_file() for p in paths):
        return None
    tables = []
    for folder, path in zip(folders, paths):
        table = _read_csv(path)
        for column, value in reversed(list(_identity_row(folder).items())):
            table.insert(0, column, value)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def write_summary(folders: list[str | Path], out: str | Path) -> list[Path]:
    """``summary.csv``, ``cells.csv``, ``ranges.csv`` and ``runs.csv`` of the cells in ``folders`` into ``out``,
    and ``calibration.csv`` when the cells calibrated; return the paths (summary.csv first, cells.csv second)."""
    import pandas as pd

    from multirater.core.files import write_csv
    from multirater.evidence.ranges import ranges_table

    seen: dict[tuple, str] = {}
    for folder in folders:
        key = cell_identity(folder)
        if key in seen:
            arm = f"arm {key[0]}, " if key[0] else ""
            bias = "" if key[2] is None else f" bias {key[2]:g}"
            raise UserError(f"is the cell {arm}{key[1]}{bias} seed {key[3]}, as {seen[key]} is",
                            Path(folder) / CELL_CONFIG)
        seen[key] = str(folder)
    ordered = sorted(folders, key=_order)
    summary = pd.DataFrame([r for f in ordered for r in summary_rows(f)], columns=SUMMARY_COLUMNS)
    cell_rows = [cell_row(f) for f in ordered]
    extra = [c for row in cell_rows for c in row if c not in CELL_COLUMNS]
    cells = pd.DataFrame(cell_rows, columns=CELL_COLUMNS + list(dict.fromkeys(extra)))
    runs = pd.DataFrame([r for r in map(run_row, ordered) if r is not None], columns=RUN_COLUMNS)
    calibration = calibration_rows(ordered)  # read every table before writing anything
    tables = {"summary.csv": summary, "cells.csv": cells, "ranges.csv": ranges_table(summary, cells),
              "runs.csv": runs}
    if calibration is not None:
        tables["calibration.csv"] = calibration
    paths = []
    for name, frame in tables.items():
        write_csv(Path(out) / name, frame)
        paths.append(Path(out) / name)
    return paths
