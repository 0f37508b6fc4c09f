"""Did the rater-specific models learn their rater's bias, and how sure are the label-sampling models where the
raters disagree? Measured on the synthetic test objects (``test_objects.csv``: who labelled which object).

A model's score on an object is the highest score among its detections on that image whose IoU with the
object's true (tight) box is at least ``IOU`` (0.5); 0 if it has none. Only the selected models count
(``selection.csv``). For the objects labelled by exactly one rater r ("r's own objects"), and for those every
rater labelled:

- ``score_<strategy>_on_<r>_only``: the mean score of the strategy's models (``ls``, ``rs-<rater>``) on r's own
  objects (mean over models and objects); ``score_<strategy>_on_all_raters`` likewise;
- ``ls_score_one_rater``: the LS models' mean score on every object labelled by exactly one rater. With two
  raters such an object has a rater share of 1/2, which a model calibrated to the raters scores;
- ``learned_bias_auc``: per rater r, the AUC (ties count 1/2) with which d = (mean score of the rs-r models)
  - (mean score of the other raters' rs models) separates r's own objects from the other raters' own
  objects, averaged over the raters (with two raters both AUCs are the same number). 0.5: the rs models
  score the raters' own objects alike (no bias learned); 1: each rater's models always score that rater's
  objects higher. NaN where a rater has no own objects.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.boxes import iou_matrix
from multirater.core.errors import UserError
from multirater.core.files import write_text
from multirater.data.synthetic.test_objects import rater_column, read_test_objects
from multirater.io.detections import Detections, read_detections
from multirater.selection.ranking import read_selection, strategy_order

IOU = 0.5


def object_scores(objects: list[dict[str, Any]], detections: Detections, name: str = "<detections>") -> np.ndarray:
    """(n_objects,) score of one model on each object: its best-scoring detection of IoU >= ``IOU``, else 0."""
    scores = np.zeros(len(objects))
    known = set(detections.image_ids.tolist())
    by_image: dict[int, list[int]] = {}
    for k, obj in enumerate(objects):
        by_image.setdefault(int(obj["image_id"]), []).append(k)
    for image_id, rows in by_image.items():
        if image_id not in known:
            raise UserError(f"has no predictions on test image {image_id}", name)
        mine = detections.image_id == image_id
        if not mine.any():
            continue
        truth = np.array([[objects[k][c] for c in ("x", "y", "w", "h")] for k in rows], dtype=np.float64)
        overlap = iou_matrix(truth, detections.boxes[mine]) >= IOU  # (objects, detections)
        best = np.where(overlap, detections.scores[mine][None, :], 0.0).max(axis=1)
        scores[rows] = best
    return scores


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative) + P(tie) / 2 (the Mann-Whitney AUC); NaN if a group is empty."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + ties / 2) / (len(positive) * len(negative)))


def learned_bias(raters: Sequence[str], objects: list[dict[str, Any]],
                 scores: dict[str, np.ndarray]) -> dict[str, float]:
    """The diagnostic's row (module docstring) from each strategy's scores (strategy -> (models, objects))."""
    labelled = np.array([[obj[rater_column(r)] for r in raters] for obj in objects], dtype=int).reshape(-1, len(raters))
    n_raters = labelled.sum(axis=1)
    own = {r: (n_raters == 1) & (labelled[:, k] == 1) for k, r in enumerate(raters)}
    groups = {**{f"{r}_only": own[r] for r in raters}, "all_raters": n_raters == len(raters)}
    row: dict[str, float] = {f"n_{g}": int(mask.sum()) for g, mask in groups.items()}
    for strategy in sorted(scores, key=strategy_order):
        per_object = scores[strategy].mean(axis=0)
        for group, mask in groups.items():
            row[f"score_{strategy}_on_{group}"] = float(per_object[mask].mean()) if mask.any() else float("nan")
    one = n_raters == 1
    row["ls_score_one_rater"] = float(scores["ls"].mean(axis=0)[one].mean()) if "ls" in scores and one.any() \
        else float("nan")
    aucs = []
    for r in raters:
        others = [q for q in raters if q != r]
        if f"rs-{r}" not in scores or not all(f"rs-{q}" in scores for q in others) or not others:
            continue
        d = scores[f"rs-{r}"].mean(axis=0) - np.mean([scores[f"rs-{q}"].mean(axis=0) for q in others], axis=0)
        theirs = np.any([own[q] for q in others], axis=0)
        aucs.append(auc(d[own[r]], d[theirs]))
    row["learned_bias_auc"] = float(np.mean(aucs)) if aucs and np.isfinite(aucs).all() else float("nan")
    return row


def columns(raters: Sequence[str]) -> list[str]:
    """The columns of ``learned_bias.csv`` (and of the evidence's cells.csv) for these raters."""
    groups = [f"{r}_only" for r in raters] + ["all_raters"]
    strategies = ["ls"] + [f"rs-{r}" for r in raters]
    return [*(f"n_{g}" for g in groups), *(f"score_{s}_on_{g}" for s in strategies for g in groups),
            "ls_score_one_rater", "learned_bias_auc"]


def write_learned_bias(objects_path: str | Path, selection_path: str | Path,
                       prediction_paths: Sequence[str | Path], out: str | Path) -> dict[str, float]:
    """``learned_bias.csv`` (one row) of the selected models' test predictions; returns the row."""
    raters, objects = read_test_objects(objects_path)
    chosen = {(r["strategy"], r["config_id"]) for r in read_selection(selection_path) if r["selected"]}
    scores: dict[str, list[np.ndarray]] = {}
    found = set()
    for path in prediction_paths:
        detections = read_detections(path)
        identity = (detections.meta or {}).get("identity") or {}
        key = (identity.get("strategy"), identity.get("config_id"))
        if key not in chosen:
            continue
        found.add(key)
        scores.setdefault(key[0], []).append(object_scores(objects, detections, str(path)))
    missing = sorted(chosen - found)
    if missing:
        raise UserError(f"no predictions given for selected model(s) {['/'.join(m) for m in missing]}",
                        selection_path)
    row = learned_bias(raters, objects, {s: np.array(v) for s, v in scores.items()})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns(raters), lineterminator="\n")
    writer.writeheader()
    writer.writerow({c: row.get(c, float("nan")) for c in columns(raters)})
    write_text(out, text.getvalue())
    return row
