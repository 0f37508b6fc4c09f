"""The result tables: one tidy metrics table, the paper's Table 1, and paired bootstrap comparisons.

Metrics files come from ``multirater evaluate`` (docs/file-contracts.md); their bootstrap ``values``
are paired across files (same seed, same resampled images), so differences are taken per resample.
A file's identity is its own top-level ``identity`` (copied by ``evaluate`` from the detections'
``meta.identity``): ``{strategy, config_id}`` for a single model, ``{kind, size, members}`` for an
ensemble. Where the file lies does not matter.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_json
from multirater.core.strategies import ENSEMBLE_KINDS, LSE, RSE, strategy_label, strategy_order
from multirater.evaluation.bootstrap import check_paired, paired_difference
from multirater.evaluation.metrics import LOWER_IS_BETTER, METRICS
from multirater.evaluation.two_level import (
    INTERVAL_COLUMNS, TWO_LEVEL, check_member_pairing, ensemble_values, excludes_zero, interval_columns,
    replicate_values,
)

TIDY_COLUMNS = ["kind", "size", "strategy", "config_id", "metric", "iou", "value", "mean", "std", "p2.5", "p97.5"]
# The finite-sample D-ECE reference (metrics file's ``dece_reference``: the D-ECE a perfectly calibrated
# detector with the same scores shows on this test set), beside every D-ECE; empty for other metrics.
REFERENCE_COLUMNS = ["ref_mean", "ref_p2.5", "ref_p97.5"]
COMPARE_COLUMNS = ["mean_a", "mean_b", "diff_mean", "diff_std", "diff_p2.5", "diff_p97.5", "p_value"]
ALPHA = 0.05


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A metrics file, checked for the parts the tables use."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        raise UserError("must be a metrics file with a 'metrics' list", path)
    for i, m in enumerate(data["metrics"]):
        if not isinstance(m, dict) or not isinstance(m.get("metric"), str) or "value" not in m:
            raise UserError("needs 'metric' and 'value'", path, f"metrics[{i}]")
    return data


def metric_key(entry: dict[str, Any]) -> tuple[str, float | None]:
    iou = entry.get("iou")
    return entry["metric"], (None if iou is None else float(iou))


def bootstrap_values(data: dict[str, Any], key: tuple[str, float | None]) -> np.ndarray | None:
    for m in data["metrics"]:
        if metric_key(m) == key:
            values = m.get("values")
            return None if values is None else np.asarray(values, dtype=float)
    return None


def _identity(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    identity = data.get("identity")
    if not isinstance(identity, dict):
        raise UserError("has no 'identity' (which model or ensemble it measures); evaluate detections that carry "
                        "meta.identity (a model's predictions, or an ensemble fused from its members file)",
                        path, "identity")
    return identity


def model_key(data: dict[str, Any], path: str | Path) -> tuple[str, str]:
    """(strategy, config_id) of a single model's metrics file, from its ``identity``."""
    identity = _identity(data, path)
    strategy, cid = identity.get("strategy"), identity.get("config_id")
    if not isinstance(strategy, str) or not isinstance(cid, str):
        raise UserError(f"must name a single model's 'strategy' and 'config_id', got {identity}", path, "identity")
    return strategy, cid


def ensemble_key(data: dict[str, Any], path: str | Path) -> tuple[str, int]:
    """(kind, size) of an ensemble's metrics file, from its ``identity``."""
    identity = _identity(data, path)
    kind, size = identity.get("kind"), identity.get("size")
    if kind not in tuple(ENSEMBLE_KINDS) or isinstance(size, bool) or not isinstance(size, int):
        raise UserError(f"must name an ensemble's 'kind' ({' or '.join(ENSEMBLE_KINDS)}) and 'size', got {identity}",
                        path, "identity")
    return kind, size


def by_identity(files: list[str | Path], identify: Any) -> dict[tuple, dict[str, Any]]:
    """Metrics files keyed by their identity; two files measuring the same model or ensemble are an error."""
    out: dict[tuple, dict[str, Any]] = {}
    for path in files:
        data = read_metrics(path)
        key = identify(data, path)
        if key in out:
            raise UserError(f"measures {'/'.join(map(str, key))}, as another metrics file does", path, "identity")
        out[key] = data
    return out


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def reference_band(data: dict[str, Any], metric: str) -> dict[str, float]:
    """``ref_mean``, ``ref_p2.5``, ``ref_p97.5`` of a D-ECE row: the file's finite-sample reference (the same
    for every IoU: it depends on the scores only); NaN for other metrics or a file without one."""
    reference = data.get("dece_reference") if metric in METRICS and METRICS[metric].reference else None
    if not isinstance(reference, dict):
        return {column: float("nan") for column in REFERENCE_COLUMNS}
    return {column: _num(reference.get(column[len("ref_"):])) for column in REFERENCE_COLUMNS}


def tidy_rows(data: dict[str, Any], **identity: Any) -> list[dict[str, Any]]:
    """One row per metric (and IoU) of a metrics file, with ``identity`` columns in front and the
    D-ECE reference band at the end."""
    rows = []
    for m in data["metrics"]:
        metric, iou = metric_key(m)
        rows.append({**identity, "metric": metric, "iou": iou, "value": _num(m["value"]),
                     **{k: _num(m.get(k)) for k in ("mean", "std", "p2.5", "p97.5")},
                     **reference_band(data, metric)})
    return rows


def metrics_table(models: dict[tuple[str, str], dict], ensembles: dict[tuple[str, int], dict]) -> "pd.DataFrame":
    """The tidy table: every single model (kind ``single``, size 1) and every ensemble."""
    import pandas as pd

    rows = []
    for (kind, size), data in sorted(ensembles.items()):
        rows += tidy_rows(data, kind=kind, size=size, strategy=ENSEMBLE_KINDS[kind].members, config_id="")
    for (strategy, cid), data in sorted(models.items(), key=lambda kv: (strategy_order(kv[0][0]), kv[0][1])):
        rows += tidy_rows(data, kind="single", size=1, strategy=strategy, config_id=cid)
    return pd.DataFrame(rows, columns=TIDY_COLUMNS + REFERENCE_COLUMNS)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, (m - i) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted.tolist()


def table1(selected: dict[tuple[str, str], dict]) -> "pd.DataFrame":
    """Table 1: mAP and mAR on the test set, mean and std (ddof=1) over each strategy's selected models."""
    import pandas as pd

    rows = []
    for strategy in sorted({s for s, _ in selected}, key=strategy_order):
        files = [d for (s, _), d in sorted(selected.items()) if s == strategy]
        row: dict[str, Any] = {"model": strategy_label(strategy), "strategy": strategy, "n_models": len(files)}
        for metric in ("mAP", "mAR"):
            values = np.array([_num(m["value"]) for d in files for m in d["metrics"] if m["metric"] == metric])
            row[f"{metric}_mean"] = float(values.mean()) if values.size else float("nan")
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "strategy", "n_models", "mAP_mean", "mAP_std", "mAR_mean", "mAR_std"])


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.2g}"


def table1_markdown(table: "pd.DataFrame") -> str:
    lines = ["| Models | mAP ± σ | mAR ± σ | n |", "|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['model']} | {_pm(r['mAP_mean'], r['mAP_std'])} | "
                     f"{_pm(r['mAR_mean'], r['mAR_std'])} | {r['n_models']} |")
    return "\n".join(lines) + "\n"


def table1_latex(table: "pd.DataFrame") -> str:
    def tex(s: str) -> str:
        return s.replace("±", r"$\pm$").replace("_", r"\_")

    lines = [r"\begin{tabular}{lccc}", r"\toprule", r"Models & mAP $\pm\,\sigma$ & mAR $\pm\,\sigma$ & $n$ \\",
             r"\midrule"]
    for _, r in table.iterrows():
        lines.append(f"{tex(r['model'])} & {tex(_pm(r['mAP_mean'], r['mAP_std']))} & "
                     f"{tex(_pm(r['mAR_mean'], r['mAR_std']))} & {r['n_models']} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _replicate_series(replicates: dict[tuple[str, str], list[dict]] | None, key: tuple[str, str],
                      metric: str) -> np.ndarray | None:
    """A selected model's two-level values of ``metric`` (its replicates drawn per resample), or None when
    it was trained once."""
    files = (replicates or {}).get(key) or []
    if len(files) < 2:
        return None
    for k, data in enumerate(files[1:], start=1):
        check_paired(files[0], data, "/".join(key), f"replicate {k} of {'/'.join(key)}")
    seed = int((files[0].get("settings") or {}).get("seed", 0))
    return replicate_values([bootstrap_values(d, (metric, None)) for d in files], seed, *key)


def significance(selected: dict[tuple[str, str], dict], metrics: tuple[str, ...] = ("mAP", "mAR"),
                 replicates: dict[tuple[str, str], list[dict]] | None = None) -> "pd.DataFrame":
    """Paired bootstrap comparisons between every pair of selected models (challengeR-style
    significance map): per metric, difference a - b over the shared resamples, Holm-adjusted p-values
    over all pairs of that metric, ``significant`` at alpha 0.05 and only with the two-level interval.

    ``replicates`` maps a selected model to its replicates' metrics files (replicate 0, the model itself,
    first): where both models have two or more, the generic columns hold the two-level bootstrap (each
    resample evaluates a drawn replicate of each model; :mod:`two_level`), else the image-only one, and
    ``interval``/``warning`` say which."""
    import pandas as pd

    columns = ["metric", "model_a", "model_b", *COMPARE_COLUMNS, "p_holm", "significant", *INTERVAL_COLUMNS]
    keys = sorted(selected, key=lambda k: (strategy_order(k[0]), k[1]))
    rows = []
    for metric in metrics:
        block = []
        for i, ka in enumerate(keys):
            va = bootstrap_values(selected[ka], (metric, None))
            for kb in keys[i + 1:]:
                vb = bootstrap_values(selected[kb], (metric, None))
                if va is None or vb is None:
                    continue
                check_paired(selected[ka], selected[kb], "/".join(ka), "/".join(kb))
                lower = metric in LOWER_IS_BETTER
                image = paired_difference(va, vb, lower)
                ta, tb = _replicate_series(replicates, ka, metric), _replicate_series(replicates, kb, metric)
                two = None if ta is None or tb is None else paired_difference(ta, tb, lower)
                warning = None if two is not None else "; ".join(
                    f"{'/'.join(k)} was trained once: the interval holds it fixed and does not cover training "
                    "noise (training.replicates)" for k, t in ((ka, ta), (kb, tb)) if t is None)
                stats = two or image
                block.append({"metric": metric, "model_a": "/".join(ka), "model_b": "/".join(kb),
                              **{k: stats[k] for k in COMPARE_COLUMNS}, **interval_columns(image, two, warning)})
        for row, p in zip(block, holm([r["p_value"] for r in block])):
            row["p_holm"] = p
            row["significant"] = row["interval"] == TWO_LEVEL and p < ALPHA
        rows += block
    return pd.DataFrame(rows, columns=columns)


def lse_vs_rse(ensembles: dict[tuple[str, int], dict],
               members: dict[int, tuple[str, dict]] | None = None) -> "pd.DataFrame":
    """Per ensemble size and metric: LSE - RSE over the paired resamples, and which one is better; D-ECE
    rows end with each ensemble's reference band (``ref_mean_lse`` ... ``ref_p97.5_rse``).

    ``members`` (size -> (path, member bootstrap file)): where both ensembles' members can vary, the generic
    columns hold the two-level bootstrap (members and images), else the image-only one; the ``_images``
    columns always hold the image-only one, ``interval`` and ``warning`` say which (:mod:`two_level`).
    ``significant``: the two-level 95 % interval excludes 0."""
    import pandas as pd

    references = [f"{c}_{kind}" for kind in (LSE, RSE) for c in REFERENCE_COLUMNS]
    columns = ["size", "metric", "iou", *[c.replace("_a", f"_{LSE}").replace("_b", f"_{RSE}") for c in COMPARE_COLUMNS],
               "significant", "better", *INTERVAL_COLUMNS, *references]
    labels = {kind: ENSEMBLE_KINDS[kind].label for kind in (LSE, RSE)}
    rows = []
    for size in sorted({s for _, s in ensembles}):
        if (LSE, size) not in ensembles or (RSE, size) not in ensembles:
            continue
        lse, rse = ensembles[(LSE, size)], ensembles[(RSE, size)]
        check_paired(lse, rse, f"{labels[LSE]} {size}", f"{labels[RSE]} {size}")
        member_path, member_data = (members or {}).get(size, (None, None))
        if member_data is not None:
            check_member_pairing(member_data, lse, member_path, f"the metrics file of {labels[LSE]} {size}")
        two_values, warning = ensemble_values(member_data)
        for m in lse["metrics"]:
            key = metric_key(m)
            a, b = bootstrap_values(lse, key), bootstrap_values(rse, key)
            if a is None or b is None:
                continue
            lower = key[0] in LOWER_IS_BETTER
            image = paired_difference(a, b, lower)
            two, why = None, warning
            if two_values is not None:
                if key in two_values[LSE] and key in two_values[RSE]:
                    two = paired_difference(two_values[LSE][key], two_values[RSE][key], lower)
                else:
                    why = f"{member_path} has no two-level values of {key[0]}: the interval holds the models fixed"
            stats = two or image
            row = {"size": size, "metric": key[0], "iou": key[1],
                   **{k.replace("_a", f"_{LSE}").replace("_b", f"_{RSE}"): stats[k] for k in COMPARE_COLUMNS}}
            row["significant"] = two is not None and excludes_zero(two)
            lse_better = stats["diff_mean"] < 0 if lower else stats["diff_mean"] > 0
            row["better"] = labels[LSE if lse_better else RSE] if stats["diff_mean"] != 0 else "tie"
            row.update(interval_columns(image, two, why if two is None else None))
            for kind, data in ((LSE, lse), (RSE, rse)):
                row.update({f"{c}_{kind}": v for c, v in reference_band(data, key[0]).items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)

