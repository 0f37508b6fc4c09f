"""The per-label-set table ``label_sets.csv``: every model and ensemble against every test label set.

A dataset may have several test label sets (a consensus, each expert at each time point, a majority
consensus); ``multirater evaluate`` measures a detections file against one of them. This table puts them
side by side: one row per (label set, model or ensemble, metric, IoU) with the point value and the bootstrap
mean and std. Each metrics file says itself what it measures: the label set from its ``settings.label_set``
(``multirater evaluate --label-set``; ``settings.gt``, the ground-truth file, when it has none) and the model
or ensemble from its ``identity``. Where a file lies does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.strategies import ENSEMBLE_KINDS, strategy_order
from multirater.evaluation.tables import ensemble_key, model_key, read_metrics, tidy_rows

LABEL_SET_COLUMNS = ["label_set", "headline", "kind", "size", "strategy", "config_id", "metric", "iou", "value",
                     "mean", "std"]


def label_set_of(data: dict[str, Any], path: str | Path) -> str:
    """The test label set a metrics file was measured against: ``settings.label_set``, else ``settings.gt``."""
    settings = data.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    name = settings.get("label_set") or settings.get("gt")
    if not isinstance(name, str) or not name:
        raise UserError("names no test label set (settings.label_set or settings.gt)", path, "settings")
    return name


def subject_columns(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``kind``, ``size``, ``strategy``, ``config_id`` of the model or ensemble a metrics file measures,
    as in metrics.csv (a single model is kind ``single``, size 1)."""
    identity = data.get("identity")
    if isinstance(identity, dict) and "kind" in identity:
        kind, size = ensemble_key(data, path)
        return {"kind": kind, "size": size, "strategy": ENSEMBLE_KINDS[kind].members, "config_id": ""}
    strategy, config_id = model_key(data, path)
    return {"kind": "single", "size": 1, "strategy": strategy, "config_id": config_id}


def _subject_order(subject: dict[str, Any]) -> tuple:
    # ensembles by kind and size first, then single models by strategy and id, as metrics.csv
    if subject["kind"] == "single":
        return (1, strategy_order(subject["strategy"]), subject["config_id"])
    return (0, subject["kind"], subject["size"])


def label_set_table(headline_files: Sequence[str | Path], other_files: Sequence[str | Path] = ()) -> "pd.DataFrame":
    """The table of every metrics file: ``headline_files`` (the headline label set's, ``headline`` True) and
    ``other_files`` (any other label set's). Label sets keep the order in which they first appear; two files
    measuring the same model or ensemble against the same label set are an error."""
    import pandas as pd

    files = [(path, True) for path in headline_files] + [(path, False) for path in other_files]
    label_sets: list[str] = []
    blocks: dict[tuple, list[dict[str, Any]]] = {}
    for path, headline in files:
        data = read_metrics(path)
        label_set = label_set_of(data, path)
        subject = subject_columns(data, path)
        if label_set not in label_sets:
            label_sets.append(label_set)
        key = (label_sets.index(label_set), _subject_order(subject))
        if key in blocks:
            what = "/".join(str(subject[c]) for c in ("kind", "size", "strategy", "config_id") if subject[c] != "")
            raise UserError(f"measures {what} against label set {label_set!r}, as another metrics file does", path,
                            "identity")
        blocks[key] = tidy_rows(data, label_set=label_set, headline=headline, **subject)
    rows = [row for key in sorted(blocks) for row in blocks[key]]
    return pd.DataFrame(rows, columns=LABEL_SET_COLUMNS)
