"""What a validation detection should have scored: the targets a calibrator is fitted to.

Every detection d of a validation image i (category k, score s_d) is matched against one label set at a time
with COCO's greedy rule (``multirater.core.matching.greedy_match``): within (i, k), detections in descending
score (stable order) each take the still-unmatched box of that label set with the highest IoU >= t. Every
detection is matched (no max-dets cap: calibration needs the low scores too). Write m_r(d) = 1 if d is
matched to a box of rater r at IoU >= t, else 0, and R(i) for the raters whose label file lists image i.

- **hard** target, against one reference label set L: y_d = m_L(d) in {0, 1}. The reference is
  - ``<rater>``: that rater's boxes (default for an ``rs-<rater>`` model: the labels it was validated on);
  - ``consensus``: the consensus boxes (only where the dataset's consensus labels the validation images);
  - ``majority``: y_d = 1 if more than half of R(i) match d, i.e. soft target > 1/2 (default for ``ls``
    models and ensembles, which saw every rater).
  Only the images L labelled enter the fit: with partial rater coverage (raters labelled different images) a
  detection on an image that L did not label has no hard target and is left out (``Targets.used``), so an
  ``rs-<rater>`` model is fitted on its own rater's validation images, the ones it was validated on. An image
  labelled by no rater and not by L is not a validation image (an error); so is a file none of whose images L
  labelled. ``majority`` uses every image, R(i) being whoever labelled it. With complete coverage every rater
  labels every validation image, so nothing is left out.
- **soft** (multi-rater) target: y_d = (1 / |R(i)|) * sum_{r in R(i)} m_r(d), the fraction of the raters who
  labelled image i whose own boxes match d, each rater matched separately.

The soft target is the hard target averaged over raters: fitting the weighted log loss (or squared loss) to
y_d gives exactly the fit to every rater's hard labels stacked, one copy of each detection per rater, which is
how ``ls`` models are validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from multirater.calibration.methods import target_spec
from multirater.core.boxes import iou_matrix
from multirater.core.errors import UserError
from multirater.core.matching import greedy_match
from multirater.core.strategies import strategy_rater
from multirater.data.dataset import Dataset
from multirater.io.detections import Detections

MAJORITY = "majority"
AUTO = "auto"


class LabelSet:
    """One source's boxes (a rater or the consensus), indexed by image: boxes (M, 4) xywh and category ids."""

    def __init__(self, coco: dict[str, Any], name: str) -> None:
        self.name = name
        by_image: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in coco["images"]}
        for ann in coco["annotations"]:
            by_image[int(ann["image_id"])].append(ann)
        self._boxes = {
            i: (np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
                np.array([a["category_id"] for a in anns], dtype=np.int64))
            for i, anns in by_image.items()
        }

    def labels(self, image_id: int) -> bool:
        """Whether this source's file lists the image (an image listed without boxes has no objects)."""
        return int(image_id) in self._boxes

    def boxes(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        return self._boxes[int(image_id)]


def _image_slices(detections: Detections) -> list[tuple[int, np.ndarray]]:
    """(image id, indices of its detections) for every image with detections, ascending id."""
    order = np.argsort(detections.image_id, kind="mergesort")
    ids, starts = np.unique(detections.image_id[order], return_index=True)
    return [(int(i), part) for i, part in zip(ids, np.split(order, starts[1:]))]


def _matched_in_image(detections: Detections, index: np.ndarray, gt_boxes: np.ndarray, gt_cats: np.ndarray,
                      iou: float) -> np.ndarray:
    out = np.zeros(len(index), dtype=bool)
    cats = detections.category_id[index]
    for category in np.unique(cats):
        here = np.flatnonzero(cats == category)
        gt = gt_boxes[gt_cats == category]
        if len(gt) == 0:
            continue
        overlap = iou_matrix(detections.boxes[index[here]], gt)
        out[here] = greedy_match(overlap, detections.scores[index[here]], iou) >= 0
    return out


def soft_targets(detections: Detections, dataset: Dataset, iou: float, detections_name: str) -> np.ndarray:
    """y_d = fraction of the raters who labelled d's image whose boxes match d at IoU >= ``iou``."""
    _check_iou(iou)
    matched = np.zeros(len(detections), dtype=np.float64)
    n_raters = np.zeros(len(detections), dtype=np.float64)
    for rater in dataset.rater_names:
        labels = LabelSet(dataset.coco(rater), rater)
        for image_id, index in _image_slices(detections):
            if labels.labels(image_id):
                matched[index] += _matched_in_image(detections, index, *labels.boxes(image_id), iou)
                n_raters[index] += 1
    unlabelled = np.flatnonzero(n_raters == 0)
    if unlabelled.size:
        image_id = int(detections.image_id[unlabelled[0]])
        raters = ", ".join(dataset.rater_names)
        raise UserError(f"image {image_id} is labelled by none of the raters ({raters}); the soft target needs "
                        "multi-rater (validation) images", detections_name)
    return matched / np.maximum(n_raters, 1.0)


@dataclass(frozen=True)
class Targets:
    """The targets a calibrator is fitted to: ``values`` (y_d) of the detections ``used`` (a mask over the
    file's detections, in file order); ``n_images`` of the file's ``n_images_total`` images are the ones used
    (labelled by the hard target's reference; every image for soft and majority)."""

    values: np.ndarray
    used: np.ndarray
    n_images: int
    n_images_total: int

    @classmethod
    def of_every_detection(cls, values: np.ndarray, n_images: int) -> "Targets":
        """Targets of every detection, on all ``n_images`` images (soft and majority)."""
        return cls(values, np.ones(len(values), dtype=bool), n_images, n_images)


def hard_targets(detections: Detections, dataset: Dataset, reference: str, iou: float,
                 detections_name: str) -> np.ndarray:
    """y_d in {0, 1}: matched to a box of ``reference`` (a rater, ``consensus`` or ``majority``), for the
    detections on images the reference labelled (all of them with complete coverage), in file order."""
    return _hard(detections, dataset, reference, iou, detections_name).values


def _hard(detections: Detections, dataset: Dataset, reference: str, iou: float, detections_name: str) -> Targets:
    n_total = len(detections.image_ids)
    if reference == MAJORITY:
        y = (soft_targets(detections, dataset, iou, detections_name) > 0.5).astype(np.float64)
        return Targets.of_every_detection(y, n_total)
    if reference not in dataset.sources:
        known = ", ".join([*dataset.sources, MAJORITY])
        raise UserError(f"unknown reference {reference!r} (known: {known})", dataset.manifest, "reference")
    _check_iou(iou)
    labels = LabelSet(dataset.coco(reference), reference)
    rater_images = set(dataset.rater_image_ids)
    flags = np.zeros(len(detections), dtype=bool)
    used = np.zeros(len(detections), dtype=bool)
    for image_id, index in _image_slices(detections):
        if labels.labels(image_id):
            used[index] = True
            flags[index] = _matched_in_image(detections, index, *labels.boxes(image_id), iou)
        elif image_id not in rater_images:  # labelled by another rater: left out; by nobody: a wrong file
            raise UserError(f"image {image_id} is not labelled by {reference}, nor by any rater: not a validation "
                            "image", detections_name)
    n_images = sum(labels.labels(i) for i in detections.image_ids.tolist())
    if n_images == 0:
        raise UserError(f"{_approach(detections)}: none of its {n_total} validation images is labelled by "
                        f"{reference} ({dataset.coco_path(reference)}), so the hard target against {reference} "
                        "has nothing to fit; choose another calibration reference or the soft target",
                        detections_name)
    return Targets(flags[used].astype(np.float64), used, n_images, n_total)


def _approach(detections: Detections) -> str:
    """What the detections are of, for messages: a model's strategy or an ensemble's kind and size."""
    meta = detections.meta if isinstance(detections.meta, dict) else {}
    identity = meta.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("kind"), str):
        return f"{identity['kind']} ensemble of {identity.get('size', '?')}"
    return model_strategy(detections) or "the detections"


def targets(detections: Detections, dataset: Dataset, target: str, reference: str | None, iou: float,
            detections_name: str) -> Targets:
    """The hard or soft target of the detections it applies to (``reference`` is used by the hard target only)."""
    if target_spec(target).reference:
        return _hard(detections, dataset, resolve_reference(detections, dataset, reference), iou, detections_name)
    return Targets.of_every_detection(soft_targets(detections, dataset, iou, detections_name),
                                      len(detections.image_ids))


def model_strategy(detections: Detections) -> str | None:
    """The strategy of a single model's detections (``meta.identity.strategy``, else ``meta.strategy``)."""
    meta = detections.meta if isinstance(detections.meta, dict) else {}
    identity = meta.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("strategy"), str):
        return identity["strategy"]
    strategy = meta.get("strategy")
    return strategy if isinstance(strategy, str) else None


def resolve_reference(detections: Detections, dataset: Dataset, reference: str | None) -> str:
    """The hard target's reference: as given, or for ``auto``/None the labels the model was validated on:
    ``rs-<rater>`` (or ``rs:<rater>``) -> that rater; anything else (``ls``, an ensemble) -> ``majority``."""
    if reference not in (None, AUTO):
        return reference
    rater = strategy_rater(model_strategy(detections) or "")
    return rater if rater is not None and rater in dataset.rater_names else MAJORITY


def _check_iou(iou: float) -> None:
    if not 0.0 < iou <= 1.0:
        raise UserError(f"must lie in (0, 1], got {iou}", None, "iou")

