"""What a run found, as reStructuredText for the report's front page (``results/report/findings.rst``).

Read from the run's tables: LSE vs RSE per ensemble size with every interval ``tables/lse_vs_rse.csv`` holds,
the best single model by validation mAP, and the calibration headline; then one sentence on what a single run
can and cannot say. Nothing here decides a direction: the numbers are shown as they are.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError

# The front page's sentence on one run; docs/demo.md says the same of the demo.
SINGLE_RUN = (
    "**One run is not evidence.** A single run's direction is not evidence for either ensemble: the sign of "
    "LSE - RSE moves with training noise and even with the machine (CPU kernels round differently); at demo scale "
    "it has been seen both ways on different machines, each time with p = 0.02. Each interval resamples only what "
    "its name says; none covers retraining with other seeds, data or machines. The evidence and mechanism studies "
    "(``make evidence``) answer the question over seeds."
)
COMPARED_METRICS = ("D-ECE", "mAP")  # of lse_vs_rse.csv, in this order; the table there has every metric
LOWER = re.compile(r"^diff_p2\.5(.*)$")


def _read_csv(path: str | Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"not a CSV table ({exc})", path) from None


def _need(table: Any, columns: list[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"lacks the column(s) {missing}", path)


def number(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; a dash when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def p_value(value: Any) -> str:
    """A p-value to two significant digits; a dash when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.2g}"


def intervals(comparison: Any) -> list[tuple[str, str, str, str]]:
    """Every interval of an lse_vs_rse table: (label, lower column, upper column, p-value column), the plain
    ``diff_p2.5``/``diff_p97.5``/``p_value`` first. Another interval is a suffix (``diff_p2.5_images``,
    ``diff_p97.5_images``, ``p_value_images``: label ``images``); the plain one is labelled by the ``interval``
    column when the table has one (what it resamples), else ``test images``."""
    found = []
    for column in comparison.columns:
        match = LOWER.match(column)
        if match is None:
            continue
        suffix = match.group(1)
        upper, p = f"diff_p97.5{suffix}", f"p_value{suffix}"
        if upper not in comparison.columns:
            continue
        if suffix:
            label = suffix.lstrip("_")
        elif "interval" in comparison.columns:
            label = " / ".join(dict.fromkeys(str(v) for v in comparison["interval"].dropna()))
        else:
            label = "test images"
        found.append((label or "test images", column, upper, p if p in comparison.columns else ""))
    return sorted(found, key=lambda item: item[1] != "diff_p2.5")


def escape_at(name: str) -> str:
    """``name`` for reStructuredText, which would read D-ECE@0.5 as an e-mail address and link it."""
    return name.replace("@", "\\@")


def _metric_name(metric: str, iou: Any) -> str:
    return escape_at(f"{metric}@{float(iou):g}") if metric == "D-ECE" else metric


def _same_iou(column: Any, iou: Any) -> Any:
    import numpy as np

    if iou is None or (isinstance(iou, float) and math.isnan(iou)):
        return column.isna()
    return np.isclose(column, float(iou))


def comparison_table(comparison_path: str | Path, metrics_path: str | Path) -> str:
    """An rst list-table: per ensemble size, D-ECE at every IoU and mAP of the LSE and the RSE on the test set
    (``metrics.csv``), LSE - RSE, and every interval and p-value of ``lse_vs_rse.csv``."""
    comparison, metrics = _read_csv(comparison_path), _read_csv(metrics_path)
    _need(comparison, ["size", "metric", "iou"], comparison_path)
    _need(metrics, ["kind", "size", "metric", "iou", "value"], metrics_path)
    found = intervals(comparison)
    if not found:
        raise UserError("has no interval columns (diff_p2.5, diff_p97.5)", comparison_path)
    header = ["size", "metric", "LSE", "RSE", "LSE - RSE"]
    for label, _lower, _upper, p in found:
        header.append(f"95 % interval ({label})")
        if p:
            header.append(f"p ({label})")
    rows = []
    chosen = comparison[comparison["metric"].isin(COMPARED_METRICS)]
    order = {m: i for i, m in enumerate(COMPARED_METRICS)}
    chosen = chosen.assign(_order=chosen["metric"].map(order)).sort_values(["size", "_order", "iou"], kind="stable")
    for _, row in chosen.iterrows():
        values = {}
        for kind in ("lse", "rse"):
            match = metrics[(metrics["kind"] == kind) & (metrics["size"] == row["size"])
                            & (metrics["metric"] == row["metric"]) & _same_iou(metrics["iou"], row["iou"])]
            values[kind] = float(match["value"].iloc[0]) if len(match) == 1 else math.nan
        cells = [str(int(row["size"])), _metric_name(row["metric"], row["iou"]), number(values["lse"]),
                 number(values["rse"]), number(values["lse"] - values["rse"])]
        for _label, lower, upper, p in found:
            cells.append(f"[{number(row[lower])}, {number(row[upper])}]")
            if p:
                cells.append(p_value(row[p]))
        rows.append(cells)
    if not rows:
        raise UserError(f"has no {' or '.join(COMPARED_METRICS)} rows", comparison_path)
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for cells in [header, *rows]:
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return "\n".join(lines)


def best_single_model(selection_path: str | Path, metrics_path: str | Path) -> str:
    """One sentence: the trained model with the best validation mAP (the selection's own criterion), and its
    test-set mAP and D-ECE."""
    from multirater.selection.ranking import read_selection

    ok = [r for r in read_selection(selection_path) if r["status"] == "ok" and r["val_map"] is not None]
    if not ok:
        return "**Best single model.** No model finished training (``selection/selection.csv``)."
    best = sorted(ok, key=lambda r: (-r["val_map"], r["strategy"], r["config_id"]))[0]
    metrics = _read_csv(metrics_path)
    _need(metrics, ["kind", "strategy", "config_id", "metric", "iou", "value"], metrics_path)
    mine = metrics[(metrics["kind"] == "single") & (metrics["strategy"] == best["strategy"])
                   & (metrics["config_id"].astype(str) == best["config_id"])]
    shown = [f"{_metric_name(r['metric'], r['iou'])} {number(r['value'])}" for _, r in mine.iterrows()
             if r["metric"] in COMPARED_METRICS]
    test = f"; on the test set {', '.join(shown)}" if shown else ""
    return (f"**Best single model** (by validation mAP, the selection's criterion): ``{best['strategy']}/"
            f"{best['config_id']}``, validation mAP {number(best['val_map'])}{test}.")


def calibration_headline(calibration_path: str | Path | None, approach: str, variant: str) -> str:
    """One sentence: the headline approach's D-ECE uncalibrated and with the headline calibrator, the change
    and its p-value (``calibration.csv``); or that post-hoc calibration is off."""
    if calibration_path is None:
        return ("**Calibration headline.** Post-hoc calibration is off (``calibration.enabled: false``): the "
                "D-ECE above is the ensembles' own.")
    table = _read_csv(calibration_path)
    _need(table, ["approach", "method", "target"], calibration_path)
    method, _, target = variant.rpartition("-")  # <method>-<target>; a method may hold a dash
    rows = table[table["approach"] == approach]
    before = rows[rows["method"] == "uncalibrated"]
    after = rows[(rows["method"] == method) & (rows["target"] == target)]
    if before.empty or after.empty:
        raise UserError(f"has no rows for the headline {approach} {variant} (and uncalibrated)", calibration_path)
    parts = []
    for column in [c for c in table.columns if re.fullmatch(r"D-ECE@[0-9.]+", c)]:
        a, b = before[column].iloc[0], after[column].iloc[0]
        change = after.get(f"{column}_change")
        p = after.get(f"{column}_change_p")
        detail = "" if change is None else (f" (change {number(change.iloc[0])}"
                                            + ("" if p is None else f", p = {p_value(p.iloc[0])}") + ")")
        parts.append(f"{escape_at(column)} {number(a)} uncalibrated, {number(b)} calibrated{detail}")
    return (f"**Calibration headline** (``{approach}`` with {variant}, what ``apply`` uses; "
            f"``tables/calibration.csv``): " + "; ".join(parts) + ".")


def findings_text(comparison: str | Path, metrics: str | Path, selection: str | Path,
                  calibration: str | Path | None, headline: tuple[str, str]) -> str:
    """The front page's *What this run found* in reStructuredText."""
    return "\n\n".join([
        "**What this run found** (from ``tables/lse_vs_rse.csv`` and ``tables/metrics.csv``). LSE - RSE per "
        "ensemble size, on the test set; D-ECE: lower is better calibrated, mAP: higher is better.",
        comparison_table(comparison, metrics),
        best_single_model(selection, metrics),
        calibration_headline(calibration, *headline),
        SINGLE_RUN,
    ]) + "\n"
