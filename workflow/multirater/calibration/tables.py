"""The calibration table: every approach (ls, rs-<rater>, lse, rse), uncalibrated and after each calibrator,
on the test set, side by side with what it cost to train.

One row per count-accuracy file (``multirater count-accuracy``). Its metrics file (``multirater evaluate``) is
the one that measured the same detections file (the metrics' ``settings.pred`` is the counts' ``detections``);
the approach comes from the detections' identity, the calibration (method, target, reference) from their
``meta.calibration``, both copied into these files, never parsed from paths.

Columns: approach, kind (single/lse/rse), size, method, target (``uncalibrated``/empty when uncalibrated),
reference (the hard target's labels), n_images; per D-ECE IoU t: ``D-ECE@t`` (point estimate), ``D-ECE@t_std``
(bootstrap std), ``D-ECE@t_change`` and ``D-ECE@t_change_p`` (mean paired difference to the same approach
uncalibrated over the shared bootstrap resamples, and its two-sided p-value; empty for the uncalibrated row);
``D-ECE_reference_mean``/``_p2.5``/``_p97.5`` (the finite-sample reference band, when the metrics file has one:
a D-ECE inside it cannot be told from perfect calibration); mAP, mAP_std, mAR, mAR_std; mean_true_count,
mean_expected_count, count_mae (mean |expected count - true count| per image), count_mae_threshold (the same for
the count of detections at or above the threshold), count_coverage (share of images whose true count lies in
expected +/- z sd); training_hours and models.

Training cost: the wall-clock seconds (Snakemake's ``benchmark:`` column ``s``, summed over its rows) of the
training job of every model of the approach (an ensemble: all its members), in hours. The pretrain job and
the rest of the sweep are left out: every approach shares them (the pretrained base stands in for the paper's
GOAT weights, and every approach's models were chosen from the same sweep).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from multirater.calibration.approaches import UNCALIBRATED, approach_of
from multirater.core.errors import UserError
from multirater.core.strategies import ENSEMBLE_KINDS, strategy_order
from multirater.evaluation.bootstrap import check_paired, paired_difference
from multirater.evaluation.counts import read_count_accuracy
from multirater.evaluation.tables import bootstrap_values, read_metrics
from multirater.io.benchmarks import read_benchmark

KIND_ORDER = {"single": 0, **{kind: k for k, kind in enumerate(ENSEMBLE_KINDS, start=1)}}


def benchmark_seconds(path: str | Path) -> float | None:
    """Sum of the ``s`` column of a Snakemake benchmark TSV (one row per run); None if there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    return float(sum(run.seconds for run in read_benchmark(path)))


def approach_models(identity: dict[str, Any]) -> list[tuple[str, str]]:
    """(strategy, config_id) of every model behind a detections identity: the model, or the members."""
    if "strategy" in identity:
        return [(identity["strategy"], identity["config_id"])]
    return [(m["strategy"], m["config_id"]) for m in identity["members"]]


def training_hours(models: list[tuple[str, str]], benchmarks: str | Path) -> tuple[float, list[str]]:
    """Summed training time (h) of ``models`` from ``<benchmarks>/<strategy>/<config_id>.tsv``, and the files
    that were missing (the sum is NaN when any is)."""
    seconds, missing = 0.0, []
    for strategy, config_id in models:
        path = Path(benchmarks) / strategy / f"{config_id}.tsv"
        value = benchmark_seconds(path)
        if value is None:
            missing.append(str(path))
        else:
            seconds += value
    return (float("nan") if missing else seconds / 3600.0), missing


def _entry(metrics: dict[str, Any], name: str, iou: float | None = None) -> dict[str, Any] | None:
    for m in metrics["metrics"]:
        if m["metric"] == name and (iou is None or (m.get("iou") is not None and abs(float(m["iou"]) - iou) < 1e-9)):
            return m
    return None


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def dece_ious(metrics: dict[str, Any]) -> list[float]:
    """The IoU thresholds of the D-ECE entries of a metrics file, ascending."""
    return sorted({float(m["iou"]) for m in metrics["metrics"] if m["metric"] == "D-ECE" and m.get("iou") is not None})


def _same_file(a: str, b: str) -> bool:
    return a == b or os.path.abspath(a) == os.path.abspath(b)


def _metrics_for(counts: dict[str, Any], counts_path: str, metrics: list[tuple[str, dict]]) -> tuple[str, dict]:
    matches = [(p, m) for p, m in metrics if _same_file(str((m.get("settings") or {}).get("pred")), counts["detections"])]
    if len(matches) != 1:
        found = "no metrics file" if not matches else f"{len(matches)} metrics files"
        raise UserError(f"{found} measured its detections {counts['detections']} (settings.pred); give exactly one",
                        counts_path, "detections")
    return matches[0]


def _row(metrics: dict[str, Any], counts: dict[str, Any], path: str, benchmarks: str | Path) -> dict[str, Any]:
    identity = metrics.get("identity")
    approach, kind, size = approach_of(identity, path)
    if counts.get("identity") is not None and counts["identity"] != identity:
        raise UserError("its identity differs from that of the count-accuracy file of the same detections", path,
                        "identity")
    calibration = counts.get("calibration") or {}
    models = approach_models(identity)
    hours, missing = training_hours(models, benchmarks)
    row: dict[str, Any] = {
        "approach": approach, "kind": kind, "size": size,
        "method": calibration.get("method") or UNCALIBRATED,
        "target": calibration.get("target") or "",
        "reference": calibration.get("reference") or "",
        "n_images": metrics.get("n_images"),
    }
    for iou in dece_ious(metrics):
        entry = _entry(metrics, "D-ECE", iou)
        row[f"D-ECE@{iou:g}"] = _num(entry["value"])
        row[f"D-ECE@{iou:g}_std"] = _num(entry.get("std"))
    reference = metrics.get("dece_reference") or {}
    for key in ("mean", "p2.5", "p97.5"):
        row[f"D-ECE_reference_{key}"] = _num(reference.get(key))
    for name in ("mAP", "mAR"):
        entry = _entry(metrics, name) or {}
        row[name] = _num(entry.get("value"))
        row[f"{name}_std"] = _num(entry.get("std"))
    s = counts["summary"]
    row.update({
        "mean_true_count": _num(s["mean_true_count"]),
        "mean_expected_count": _num(s["mean_expected_count"]),
        "count_mae": _num(s["mae_expected"]),
        "count_mae_threshold": _num(s["mae_threshold"]),
        "count_coverage": _num(s["coverage"]),
        "training_hours": hours,
        "models": " ".join(f"{st}/{cid}" for st, cid in models),
        "_missing_benchmarks": missing,
    })
    return row


def _add_changes(rows: list[dict[str, Any]], metrics_of: list[dict[str, Any]], names: list[str]) -> None:
    """D-ECE change against the uncalibrated row of the same approach, paired over the bootstrap resamples."""
    uncalibrated = {r["approach"]: i for i, r in enumerate(rows) if r["method"] == UNCALIBRATED}
    for i, row in enumerate(rows):
        base = uncalibrated.get(row["approach"])
        for iou in dece_ious(metrics_of[i]):
            change = p = float("nan")
            if base is not None and base != i:
                check_paired(metrics_of[base], metrics_of[i], names[base], names[i])
                a = bootstrap_values(metrics_of[i], ("D-ECE", iou))
                b = bootstrap_values(metrics_of[base], ("D-ECE", iou))
                if a is not None and b is not None:
                    stats = paired_difference(a, b, lower_is_better=True)
                    change, p = stats["diff_mean"], stats["p_value"]
            row[f"D-ECE@{iou:g}_change"], row[f"D-ECE@{iou:g}_change_p"] = change, p


def calibration_table(metrics_files: list[str], counts_files: list[str],
                      benchmarks: str | Path) -> tuple["pd.DataFrame", list[str]]:
    """The table (module docstring) and the benchmark files that were missing (their rows' cost is NaN)."""
    import pandas as pd

    metrics = [(str(p), read_metrics(p)) for p in metrics_files]
    rows, metrics_of, names, missing = [], [], [], []
    for path in counts_files:
        counts = read_count_accuracy(path)
        metrics_path, data = _metrics_for(counts, str(path), metrics)
        row = _row(data, counts, metrics_path, benchmarks)
        missing += row.pop("_missing_benchmarks")
        rows.append(row)
        metrics_of.append(data)
        names.append(metrics_path)
    seen: dict[tuple[str, str, str], str] = {}
    for row, name in zip(rows, names):
        key = (row["approach"], row["method"], row["target"])
        if key in seen:
            raise UserError(f"measures {'/'.join(k for k in key if k)}, as {seen[key]} does", name, "identity")
        seen[key] = name
    _add_changes(rows, metrics_of, names)
    order = sorted(range(len(rows)), key=lambda i: (KIND_ORDER[rows[i]["kind"]], strategy_order(rows[i]["approach"]),
                                                    rows[i]["method"] != UNCALIBRATED, i))
    table = pd.DataFrame([rows[i] for i in order])
    return table[_columns(table)], sorted(set(missing))


def _columns(table: "pd.DataFrame") -> list[str]:
    front = ["approach", "kind", "size", "method", "target", "reference", "n_images"]
    suffixes = ["", "_std", "_change", "_change_p"]
    dece = sorted((c for c in table.columns if c.startswith("D-ECE@")),
                  key=lambda c: (float(c[len("D-ECE@"):].split("_")[0]), suffixes.index(c[c.find("_"):] if "_" in c else "")))
    rest = [c for c in table.columns if c not in front and c not in dece]
    return front + dece + rest
