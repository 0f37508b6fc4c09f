"""The evidence's tables: LSE vs RSE in every cell (``summary.csv``), what held across the data seeds
(``directions.csv``; ``ranges.csv``, ``evidence.ranges``), what each cell's data and models were like and where
each cell ran (``cells.csv``), and how long each cell took (``runs.csv``).

A cell is identified by its own config file (``config.yaml``: ``dataset.synthetic.preset``, ``bias`` and
``seed``, and ``evidence.arm``), never by its folder's name. Per ensemble size and metric (D-ECE against the
headline label set, D-ECE-soft against the raters' own test labels where the cell has them, mAP, ...),
``summary.csv`` holds the test-set values of the LSE and the RSE (``tables/metrics.csv``), their difference
LSE - RSE, and from ``tables/lse_vs_rse.csv`` the two-level bootstrap 95 % interval of the difference (members
and images, where the cell's pool can vary the members: ``interval`` says which), its p-value and
``significant``, the image-only interval beside it (models held fixed), the cell's warning, and each
ensemble's finite-sample D-ECE reference band (D-ECE rows). For D-ECE (lower is better) a difference above 0
means the RSE is better calibrated.

``directions.csv`` draws the conclusion over the data seeds of a setting (arm, preset, bias), never from one
training run: per setting, size, metric and IoU, in how many seeds the two-level interval puts the LSE or the
RSE ahead, and a direction only when it holds in every seed (``RSE better in 3 of 3 seeds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_json, read_yaml
from multirater.core.provenance import PROVENANCE_COLUMNS, provenance_columns
from multirater.core.strategies import LSE, RSE
from multirater.ensembles.files import TEST, fused_file
from multirater.evidence.design import CELL_CONFIG, RESULTS, RUN_RECORD

IDENTITY = ["arm", "preset", "bias", "data_seed"]
SETTING = IDENTITY[:-1]  # what the data seeds of a setting share
REFERENCE_COLUMNS = ["ref_mean_lse", "ref_p2.5_lse", "ref_p97.5_lse", "ref_mean_rse", "ref_p2.5_rse", "ref_p97.5_rse"]
INTERVAL_COLUMNS = ["significant", "interval", "diff_p2.5_images", "diff_p97.5_images", "p_value_images", "warning"]
SUMMARY_COLUMNS = [*IDENTITY, "size", "metric", "iou", "lse", "rse", "difference", "diff_p2.5", "diff_p97.5",
                   "p_value", *INTERVAL_COLUMNS, *REFERENCE_COLUMNS]
DIRECTION_COLUMNS = [*SETTING, "size", "metric", "iou", "seeds", "two_level", "lse_better", "rse_better", "neither",
                     "finding"]
# A cell whose lse_vs_rse.csv has no ``interval`` column predates the two-level bootstrap: its interval is the
# image-only one.
OLD_TABLE = "this cell's lse_vs_rse.csv holds the image-only interval only (made before the member bootstrap)"
# A cell's facts; then the learned-bias diagnostic's columns (tables/learned_bias.csv, one per rater and
# strategy); last where the cell ran (its workflow's results/run.json: commit, versions, CPU capability, threads,
# device; multirater.core.provenance.PROVENANCE_COLUMNS).
CELL_COLUMNS = [*IDENTITY, "inter_f1", "intra_f1", "single_models", "single_ap50_min", "single_ap50_mean",
                "single_map_mean", "ensemble_size", "lse_score_std", "rse_score_std",
                "rse_share_boxed_by_one_rater_only"]
RUN_COLUMNS = [*IDENTITY, "cores", "minutes"]
# Agreement and diversity are read at these: F1 at IoU 0.5 (the paper's Fig. 2), and the fused detections
# of the largest ensembles scoring at least 0.2 (those that matter for calibration).
AGREEMENT_IOU = 0.5
SCORE_FLOOR = 0.2


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
        for kind in (LSE, RSE):
            match = metrics[(metrics["kind"] == kind) & (metrics["size"] == c["size"])
                            & (metrics["metric"] == c["metric"]) & _same_iou(metrics["iou"], c["iou"])]
            if len(match) != 1:
                raise UserError(f"has {len(match)} rows for {kind} {c['size']} {c['metric']} (IoU {c['iou']})",
                                tables / "metrics.csv")
            value[kind] = float(match["value"].iloc[0])
        rows.append({**identity, "size": int(c["size"]), "metric": c["metric"], "iou": c["iou"],
                     LSE: value[LSE], RSE: value[RSE], "difference": value[LSE] - value[RSE],
                     "diff_p2.5": c["diff_p2.5"], "diff_p97.5": c["diff_p97.5"], "p_value": c["p_value"],
                     **_intervals(c), **{k: c.get(k, np.nan) for k in REFERENCE_COLUMNS}})
    return rows


def _intervals(row: "Any") -> dict[str, Any]:
    """The interval columns of one lse_vs_rse.csv row; a table from before the member bootstrap gives its
    generic columns as the image-only ones, labelled so."""
    if "interval" not in row.index:
        return {"significant": False, "interval": "images", "diff_p2.5_images": row["diff_p2.5"],
                "diff_p97.5_images": row["diff_p97.5"], "p_value_images": row["p_value"], "warning": OLD_TABLE}
    warning = row.get("warning")
    return {"significant": bool(row["significant"]), "interval": row["interval"],
            **{k: row[k] for k in ("diff_p2.5_images", "diff_p97.5_images", "p_value_images")},
            "warning": warning if isinstance(warning, str) else None}


def _favoured(row: "Any") -> str | None:
    """Which ensemble a significant two-level row puts ahead (``LSE``/``RSE``), or None."""
    from multirater.evaluation.metrics import LOWER_IS_BETTER

    if row["interval"] != "members+images" or not row["significant"]:
        return None
    lse_ahead = (row["diff_p97.5"] < 0) if row["metric"] in LOWER_IS_BETTER else (row["diff_p2.5"] > 0)
    return "LSE" if lse_ahead else "RSE"


def directions(summary: "Any") -> "Any":
    """``directions.csv``: per setting (arm, preset, bias), size, metric and IoU over the data seeds, how many
    cells had a two-level interval, in how many it put the LSE or the RSE significantly ahead, and the finding:
    a direction only when every seed gives it with the two-level interval."""
    import pandas as pd

    rows = []
    for _, cells in summary.groupby([*SETTING, "size", "metric", "iou"], dropna=False, sort=False):
        favoured = [_favoured(r) for _, r in cells.iterrows()]
        n, two = len(cells), int((cells["interval"] == "members+images").sum())
        lse, rse = favoured.count("LSE"), favoured.count("RSE")
        if lse == n or rse == n:
            finding = f"{'LSE' if lse == n else 'RSE'} better in {n} of {n} seeds"
        else:
            finding = (f"no direction in every seed (LSE better in {lse}, RSE better in {rse}, neither in "
                       f"{n - lse - rse} of {n}" + (f"; {n - two} without a two-level interval" if two < n else "")
                       + ")")
        first = cells.iloc[0]
        rows.append({**{k: first[k] for k in SETTING}, "size": int(first["size"]), "metric": first["metric"],
                     "iou": first["iou"], "seeds": n, "two_level": two, "lse_better": lse, "rse_better": rse,
                     "neither": n - lse - rse, "finding": finding})
    return pd.DataFrame(rows, columns=DIRECTION_COLUMNS)


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
    the learned-bias diagnostic (``evaluation.learned_bias``); where the cell ran comes last (``cell_columns``)."""
    results = Path(folder) / RESULTS
    metrics = _read_csv(results / "tables" / "metrics.csv")
    single = metrics[metrics["kind"] == "single"]
    ap50 = single.loc[single["metric"] == "AP50", "value"].to_numpy(float)
    size = int(metrics.loc[metrics["kind"] == RSE, "size"].max())
    lse, rse = (_read_fused(Path(fused_file(results, TEST, kind, size))) for kind in (LSE, RSE))
    return {**_identity_row(folder),
            "inter_f1": _agreement(results / "agreement" / "f1_vs_iou.csv", "inter"),
            "intra_f1": _agreement(results / "agreement" / "f1_vs_iou.csv", "intra"),
            "single_models": len(ap50), "single_ap50_min": float(ap50.min()), "single_ap50_mean": float(ap50.mean()),
            "single_map_mean": float(single.loc[single["metric"] == "mAP", "value"].mean()),
            "ensemble_size": size, "lse_score_std": score_spread(lse), "rse_score_std": score_spread(rse),
            "rse_share_boxed_by_one_rater_only": one_rater_share(rse), **learned_bias_row(folder),
            **cell_provenance(results)}


def cell_provenance(results: Path) -> dict[str, Any]:
    """Where a cell's workflow ran, from its ``results/run.json``; empty for a cell run before workflows
    wrote one."""
    from multirater.io.run_file import read_run

    path = results / "run.json"
    if not path.is_file():
        return dict.fromkeys(PROVENANCE_COLUMNS)
    return provenance_columns(read_run(path))


def cell_columns(rows: list[dict[str, Any]]) -> list[str]:
    """cells.csv's columns: ``CELL_COLUMNS``, the learned-bias diagnostic's (as the cells have them), then
    ``PROVENANCE_COLUMNS``."""
    known = {*CELL_COLUMNS, *PROVENANCE_COLUMNS}
    diagnostic = dict.fromkeys(c for row in rows for c in row if c not in known)
    return [*CELL_COLUMNS, *diagnostic, *PROVENANCE_COLUMNS]


def run_row(folder: str | Path) -> dict[str, Any] | None:
    """How long a cell ran and on how many cores (its ``run.json``), or None without one; where it ran is in
    cells.csv (its workflow's ``results/run.json``)."""
    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        return None
    run = read_json(path)
    return {**_identity_row(folder), "cores": run.get("cores"), "minutes": round(run["seconds"] / 60, 1)}


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
    """``summary.csv``, ``cells.csv``, ``directions.csv``, ``ranges.csv`` and ``runs.csv`` of the cells in
    ``folders`` into ``out``, and ``calibration.csv`` when the cells calibrated; return the paths, in this
    order."""
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
    cells = pd.DataFrame(cell_rows, columns=cell_columns(cell_rows))
    runs = pd.DataFrame([r for r in map(run_row, ordered) if r is not None], columns=RUN_COLUMNS)
    calibration = calibration_rows(ordered)  # read every table before writing anything
    tables = {"summary.csv": summary, "cells.csv": cells, "directions.csv": directions(summary),
              "ranges.csv": ranges_table(summary, cells), "runs.csv": runs}
    if calibration is not None:
        tables["calibration.csv"] = calibration
    paths = []
    for name, frame in tables.items():
        write_csv(Path(out) / name, frame)
        paths.append(Path(out) / name)
    return paths
