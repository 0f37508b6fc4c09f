"""Bootstrap resamples of the test images, their summaries, and paired comparison of two metrics files.

Resamples draw the test images (ascending image id) with replacement:
``rng = numpy.random.default_rng(seed)``, ``idx = rng.integers(0, n_images, size=(B, n_images))``.
The same seed gives the same resamples for every prediction file, so two files' per-resample values are
paired and can be compared resample by resample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.evaluation.metrics import LOWER_IS_BETTER


def resample_indices(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n_images) positions of the drawn images; row b is resample b."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_images, size=(n_resamples, n_images))


def resample_counts(indices: np.ndarray, n_images: int) -> np.ndarray:
    """(B, n_images) float64: how often each image appears in each resample (its weight)."""
    n_resamples = indices.shape[0]
    flat = (indices + n_images * np.arange(n_resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_resamples * n_images)
    return counts.reshape(n_resamples, n_images).astype(np.float64)


def _number(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def summarize(value: float, values: np.ndarray | None) -> dict[str, Any]:
    """The metric record's numbers: the estimate and, with resamples, mean, std (ddof=1), 2.5/97.5 %.

    An undefined value (NaN: e.g. AP on a resample without any ground-truth box) is written as null and
    left out of the summary statistics.
    """
    record: dict[str, Any] = {"value": _number(value)}
    if values is None:
        return record
    values = np.asarray(values, dtype=np.float64)
    defined = values[np.isfinite(values)]
    record["mean"] = float(defined.mean()) if len(defined) else None
    record["std"] = float(defined.std(ddof=1)) if len(defined) > 1 else None
    record["p2.5"] = float(np.percentile(defined, 2.5)) if len(defined) else None
    record["p97.5"] = float(np.percentile(defined, 97.5)) if len(defined) else None
    record["values"] = [_number(v) for v in values]
    return record


def _records(metrics: dict, name: str) -> dict[tuple[str, Any], dict]:
    if not isinstance(metrics, dict) or not isinstance(metrics.get("metrics"), list):
        raise UserError("not a metrics file (no 'metrics' list)", name)
    out = {}
    for i, rec in enumerate(metrics["metrics"]):
        if not isinstance(rec, dict) or "metric" not in rec or "value" not in rec:
            raise UserError("needs 'metric' and 'value'", name, f"metrics[{i}]")
        if not isinstance(rec.get("values"), list) or not rec["values"]:
            raise UserError("has no bootstrap 'values' (evaluated without bootstrap resamples)", name, f"metrics[{i}]")
        out[(rec["metric"], rec.get("iou"))] = rec
    return out


def check_paired(a: dict, b: dict, name_a: str, name_b: str) -> None:
    """Refuse to compare two metrics files whose resamples are not the same draws of the same images."""
    sa, sb = a.get("settings") or {}, b.get("settings") or {}
    keys = ["seed", "bootstrap"] + (["gt"] if "gt" in sa and "gt" in sb else [])
    for key in keys:
        if sa.get(key) != sb.get(key):
            raise UserError(
                f"resamples are not paired: settings.{key} is {sb.get(key)!r} here but {sa.get(key)!r} in {name_a}",
                name_b,
            )
    if a.get("n_images") != b.get("n_images"):
        raise UserError(
            f"resamples are not paired: {b.get('n_images')} test images here but {a.get('n_images')} in {name_a}",
            name_b,
        )


def paired_difference(a: Any, b: Any, lower_is_better: bool = False) -> dict[str, float]:
    """Paired bootstrap statistics of ``a - b`` (one value per resample).

    Resamples where either value is undefined (NaN/None) are left out. Returns the means, the mean
    difference, its std (ddof=1) and 95 % percentile interval, the fraction of resamples in which A is
    strictly better, and a two-sided p-value 2 * min(P(d <= 0), P(d >= 0)) with the usual +1 correction,
    so a finite number of resamples never gives p = 0.
    """
    a = np.asarray([np.nan if v is None else v for v in a], dtype=np.float64)
    b = np.asarray([np.nan if v is None else v for v in b], dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise UserError(f"paired resamples must have the same length, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    n = a.size
    if n == 0:
        nan = float("nan")
        return {"mean_a": nan, "mean_b": nan, "diff_mean": nan, "diff_std": nan, "diff_p2.5": nan,
                "diff_p97.5": nan, "frac_a_better": nan, "p_value": nan}
    d = a - b
    better = d < 0 if lower_is_better else d > 0
    p = 2 * min(np.sum(d <= 0) + 1, np.sum(d >= 0) + 1) / (n + 1)
    return {
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff_mean": float(d.mean()),
        "diff_std": float(d.std(ddof=1)) if n > 1 else float("nan"),
        "diff_p2.5": float(np.percentile(d, 2.5)),
        "diff_p97.5": float(np.percentile(d, 97.5)),
        "frac_a_better": float(better.mean()),
        "p_value": float(min(1.0, p)),
    }


def compare(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> list[dict]:
    """Paired comparison of two metrics files, per metric and IoU present in both.

    Returns records with the point estimates and the paired statistics of A - B over the resamples
    (:func:`paired_difference`; lower D-ECE is better, higher everything else).
    """
    ra, rb = _records(a, name_a), _records(b, name_b)
    check_paired(a, b, name_a, name_b)
    rows = []
    for key, rec_a in ra.items():
        if key not in rb:
            continue
        if len(rec_a["values"]) != len(rb[key]["values"]):
            raise UserError(
                f"{len(rb[key]['values'])} resamples here but {len(rec_a['values'])} in {name_a}",
                name_b,
                f"metric {key[0]}",
            )
        stats = paired_difference(rec_a["values"], rb[key]["values"], key[0] in LOWER_IS_BETTER)
        if not np.isfinite(stats["diff_mean"]):  # undefined in every resample of one file
            continue
        rows.append({"metric": key[0], "iou": key[1], "value_a": rec_a["value"], "value_b": rb[key]["value"],
                     **{k: stats[k] for k in ("diff_mean", "diff_std", "diff_p2.5", "diff_p97.5",
                                              "frac_a_better", "p_value")}})
    if not rows:
        raise UserError(f"no metric in common with {name_a}", name_b)
    return rows
