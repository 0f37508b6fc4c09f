"""Two-level intervals in the comparison tables: the test images and the models' training noise.

``lse_vs_rse.csv`` and ``significance.csv`` give each difference twice. The generic columns (``diff_mean``,
``diff_std``, ``diff_p2.5``, ``diff_p97.5``, ``p_value``) hold the two-level bootstrap, members and images,
where the pool can vary the members; ``interval`` names what they hold (``members+images`` or ``images``) and
``warning`` says why when it is only the images. The ``_images`` columns always hold the image-only bootstrap
(models held fixed). ``significant`` needs the two-level interval: it is never true of an ``images`` row.

- LSE vs RSE: the two-level values of each ensemble come from the member bootstrap file of its size
  (multirater.evaluation.member_bootstrap).
- Single models (significance.csv): a model's member level is its training replicates; resample b evaluates
  replicate ``replicate_choices(...)[b]`` of each model (the replicates' metrics files share the image
  resamples), so a model trained once has no member level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.core.files import read_format_json
from multirater.evaluation.member_bootstrap import FORMAT, KINDS
from multirater.evaluation.member_draws import replicate_choices

TWO_LEVEL = "members+images"
IMAGES = "images"
IMAGE_COLUMNS = ["diff_p2.5_images", "diff_p97.5_images", "p_value_images"]
INTERVAL_COLUMNS = [*IMAGE_COLUMNS, "interval", "warning"]
NO_MEMBER_FILE = ("no member bootstrap of this size was given: the interval holds the trained models fixed and "
                  "does not cover training noise")


def read_member_bootstrap(path: str | Path) -> dict[str, Any]:
    """A member bootstrap file, checked for the parts the tables read."""
    data = read_format_json(path, FORMAT, "member bootstrap file")
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise UserError(f"must be an integer, got {size!r}", path, "size")
    ensembles = data.get("ensembles")
    kinds = None
    if isinstance(ensembles, list) and all(isinstance(e, dict) for e in ensembles):
        kinds = sorted(str(e.get("kind")) for e in ensembles)
    if kinds != list(KINDS):
        raise UserError(f"must hold one record per kind {list(KINDS)}", path, "ensembles")
    for i, record in enumerate(ensembles):
        if not isinstance(record.get("varies"), bool) or not isinstance(record.get("metrics"), list):
            raise UserError("needs 'varies' (true/false) and 'metrics' (a list)", path, f"ensembles[{i}]")
        if record["varies"] and not record["metrics"]:
            raise UserError("varies but has no metrics", path, f"ensembles[{i}]")
    return data


def member_files_by_size(paths: list[str | Path]) -> dict[int, tuple[str, dict[str, Any]]]:
    """Member bootstrap files keyed by their size; two files of one size are an error."""
    out: dict[int, tuple[str, dict[str, Any]]] = {}
    for path in paths:
        data = read_member_bootstrap(path)
        if data["size"] in out:
            raise UserError(f"is of size {data['size']}, as {out[data['size']][0]} is", path, "size")
        out[data["size"]] = (str(path), data)
    return out


def check_member_pairing(members: dict[str, Any], metrics: dict[str, Any], members_name: str,
                         metrics_name: str) -> None:
    """Refuse a member bootstrap whose image resamples are not the metrics file's."""
    mine, theirs = members.get("settings") or {}, metrics.get("settings") or {}
    keys = ["seed", "bootstrap"] + [k for k in ("gt", "soft_gt") if mine.get(k) and theirs.get(k)]
    for key in keys:
        if mine.get(key) != theirs.get(key):
            raise UserError(f"image resamples are not paired: settings.{key} is {mine.get(key)!r} here but "
                            f"{theirs.get(key)!r} in {metrics_name}", members_name)
    if members.get("n_images") != metrics.get("n_images"):
        raise UserError(f"image resamples are not paired: {members.get('n_images')} test images here but "
                        f"{metrics.get('n_images')} in {metrics_name}", members_name)


def _key(record: dict[str, Any]) -> tuple[str, float | None]:
    iou = record.get("iou")
    return record["metric"], (None if iou is None else float(iou))


def _values(values: list) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def ensemble_values(members: dict[str, Any] | None) -> tuple[dict[str, dict] | None, str | None]:
    """({kind: {metric key: two-level values}} or None, warning): None when a size has no member bootstrap or
    an ensemble's members cannot vary; the warning joins the ensembles' own."""
    if members is None:
        return None, NO_MEMBER_FILE
    by_kind = {r["kind"]: r for r in members["ensembles"]}
    warning = "; ".join(r["warning"] for r in members["ensembles"] if r.get("warning")) or None
    if not all(by_kind[k]["varies"] for k in KINDS):
        return None, warning
    return {k: {_key(m): _values(m["values"]) for m in by_kind[k]["metrics"]} for k in KINDS}, warning


def replicate_values(columns: list[np.ndarray | None], seed: int, strategy: str, config_id: str) -> np.ndarray | None:
    """A single model's two-level values of one metric: per resample, the value of the replicate drawn for it
    (``columns``: each replicate's resample values, replicate 0 first, paired); None when a replicate has no
    resamples of this metric."""
    if any(c is None for c in columns) or len({len(c) for c in columns}) != 1:
        return None
    stacked = np.stack(columns)
    pick = replicate_choices(len(columns), stacked.shape[1], seed, strategy, config_id)
    return stacked[pick, np.arange(stacked.shape[1])]


def interval_columns(image: dict[str, float], two_level: dict[str, float] | None,
                     warning: str | None) -> dict[str, Any]:
    """The image-only columns, ``interval`` and ``warning`` of one row."""
    return {"diff_p2.5_images": image["diff_p2.5"], "diff_p97.5_images": image["diff_p97.5"],
            "p_value_images": image["p_value"], "interval": TWO_LEVEL if two_level is not None else IMAGES,
            "warning": warning}


def excludes_zero(stats: dict[str, float]) -> bool:
    """Whether a difference's 95 % interval lies wholly on one side of 0."""
    return bool(stats["diff_p2.5"] > 0 or stats["diff_p97.5"] < 0)
