"""``splits.json`` as training and prediction read it: checked against the dataset they use."""

from __future__ import annotations

from pathlib import Path

from multirater.core.errors import UserError
from multirater.core.files import read_json
from multirater.data.dataset import Dataset
from multirater.training.coverage import RaterCoverage


def read_splits(path: str | Path, dataset: Dataset) -> dict[str, list[int]]:
    """The sorted image ids of ``train``, ``val`` and ``test``; train and val must be non-empty and
    among the dataset's multi-rater images (labelled by at least one rater)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError("must be a JSON object with train, val and test", path)
    known = set(RaterCoverage(dataset).image_ids)
    out: dict[str, list[int]] = {}
    for key in ("train", "val", "test"):
        ids = data.get(key, [] if key == "test" else None)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise UserError("must be a list of image ids", path, key)
        if key != "test":
            unknown = sorted(set(ids) - known)
            if unknown:
                raise UserError(f"ids not among the dataset's multi-rater images: {unknown[:5]}", path, key)
        out[key] = sorted(ids)
    for key in ("train", "val"):
        if not out[key]:
            raise UserError("is empty; training needs training and validation images", path, key)
    return out
