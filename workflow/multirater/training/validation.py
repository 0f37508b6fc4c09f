"""Validation during training: which epochs are validated, on which windows, and the mAP they give.

- **Which epochs** (``training.val_every``): every ``val_every``-th epoch and the last one. Early stopping
  (``patience``) and the plateau schedule (``plateau_patience``) still count epochs; they are decided at
  validated epochs only, and ``best.pt`` is the best validated epoch.
- **Which windows** (``training.val_windows``, tiled models only): ``objects`` predicts only the windows of
  the prediction grid (:func:`~multirater.training.tiling.tiles`) that own the centre of at least one box
  of the labels the model is validated against; ``all`` predicts every window. The grid's owned regions
  partition the image, so every validation box lies in a predicted window's region, and what ``objects``
  leaves out are detections in regions no validating rater labelled anything in: false positives only.
  Its mAP is therefore at least the mAP of all windows (equal when the model finds nothing there): a
  cheaper score for choosing ``best.pt`` and stopping early, not a measure of the model (the workflow's
  evaluation predicts every window of the test images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from multirater.training.validation_map import coco_map
from multirater.training.labels import validation_sources
from multirater.training.prediction import detect, detect_large, to_xywh
from multirater.training.tiling import Tile, tiles

if TYPE_CHECKING:
    from multirater.training.job import TrainingJob

Found = tuple[np.ndarray, np.ndarray, np.ndarray]


def validates(settings: dict[str, Any], epoch: int) -> bool:
    """Whether ``epoch`` (0-based) is validated: every ``val_every``-th and the last."""
    return (epoch + 1) % settings["val_every"] == 0 or epoch + 1 >= settings["epochs"]


def _validating_sources(job: "TrainingJob", image_id: int) -> list[str]:
    return [s for s in validation_sources(job.strategy, job.raters) if job.coverage.labelled(s, image_id)]


def object_tiles(job: "TrainingJob", image_id: int) -> list[Tile]:
    """The prediction windows of a validation image that own the centre of a box some validating source
    drew on it."""
    width, height = job.images.size(image_id)
    grid = tiles(width, height, job.model_settings["tile_size"], job.model_settings["tile_overlap"])
    xywh = np.concatenate([job.dataset.boxes(s, image_id) for s in _validating_sources(job, image_id)]
                          or [np.zeros((0, 4))])
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return [t for t in grid if t.owns(xyxy).any()]


def validation_windows(job: "TrainingJob") -> tuple[int, int]:
    """(windows predicted, windows of the whole grid) over the validation images of a tiled job."""
    tile, overlap = job.model_settings["tile_size"], job.model_settings["tile_overlap"]
    every = sum(len(tiles(*job.images.size(i), tile, overlap)) for i in job.val_ids)
    if job.settings["val_windows"] == "all":
        return every, every
    return sum(len(object_tiles(job, i)) for i in job.val_ids), every


def validation_detections(job: "TrainingJob") -> list[Found]:
    """The model's (boxes xyxy, scores, labels) on each validation image: whole images, ``batch_size`` at a
    time; or, when tiling is on, in overlapping windows as predictions are made (those that hold objects
    with ``val_windows: objects``)."""
    batch_size = job.settings["batch_size"]
    if job.model_settings.get("tile_size") is None:
        found: list[Found] = []
        for start in range(0, len(job.val_ids), batch_size):
            chunk = job.val_ids[start:start + batch_size]
            found += detect(job.model, [job.images[i] for i in chunk], batch_size, job.device, job.amp)
        return found
    objects_only = job.settings["val_windows"] == "objects"
    return [detect_large(job.model, lambda window, i=image_id: job.images.region(i, window), *job.images.size(image_id),
                         job.model_settings, batch_size, job.device, job.amp,
                         object_tiles(job, image_id) if objects_only else None)
            for image_id in job.val_ids]


def evaluate(job: "TrainingJob") -> dict[str, float]:
    """Validation mAP and AP50 (COCO) of the model; each validation image counts once per rater the
    strategy validates on who labelled it."""
    found = validation_detections(job)
    ground_truth, detections = [], []
    for source in validation_sources(job.strategy, job.raters):
        for image_id, (boxes, scores, labels) in zip(job.val_ids, found):
            if not job.coverage.labelled(source, image_id):
                continue
            ground_truth.append((job.dataset.boxes(source, image_id), job.dataset.labels(source, image_id)))
            detections.append((to_xywh(boxes), scores, job.label_map.categories(labels)))
    return coco_map(ground_truth, detections, job.label_map.category_ids, job.settings["val_max_dets"])
