"""Fit a calibrator on one model's (or ensemble's) validation detections, and apply it to other detections.

A calibrator maps raw scores, so it is fitted on, and applied to, detections that are not calibrated yet
(no ``meta.calibration``). The calibrated detections keep everything but their scores and record the
calibration in ``meta.calibration``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from multirater.calibration.calibrators import Calibrator, fit_calibrator
from multirater.calibration.image_sizes import ImageSizes, dataset_image_sizes, detection_box_features
from multirater.calibration.methods import method_spec, target_spec
from multirater.calibration.targets import resolve_reference, targets
from multirater.core.errors import UserError
from multirater.data.dataset import Dataset
from multirater.io.detections import Detections


def check_uncalibrated(detections: Detections, detections_name: str) -> None:
    """Refuse detections whose scores were calibrated already: calibrators map a model's raw scores."""
    meta = detections.meta if isinstance(detections.meta, dict) else {}
    done = meta.get("calibration")
    if done is not None:
        method = done.get("method") if isinstance(done, dict) else None
        raise UserError(f"already calibrated ({method}); calibrators fit and map a model's raw scores",
                        detections_name)


def _identity(detections: Detections) -> Any:
    return detections.meta.get("identity") if isinstance(detections.meta, dict) else None


def fit_on_validation(detections: Detections, dataset: Dataset, method: str, target: str, iou: float,
                      reference: str | None, detections_name: str) -> Calibrator:
    """Fit ``method`` to the ``target`` (hard against ``reference``, or soft) of the validation detections.

    The hard target leaves out the detections on images its reference did not label (partial rater coverage);
    ``fitted`` records how many images and detections the fit used and how many it left out."""
    check_uncalibrated(detections, detections_name)
    if len(detections) == 0:
        raise UserError("no detections to fit a calibrator on", detections_name)
    uses_reference = target_spec(target).reference
    resolved = resolve_reference(detections, dataset, reference) if uses_reference else None
    fit = targets(detections, dataset, target, resolved, iou, detections_name)
    n_used = int(fit.used.sum())
    if n_used == 0:
        raise UserError(f"{resolved} labelled {fit.n_images} of the validation images and none of them has a "
                        "detection: nothing to fit a calibrator on", detections_name)
    scores = detections.scores[fit.used]
    features = None
    if method_spec(method).box_features:
        features = detection_box_features(detections, dataset_image_sizes(dataset), detections_name)[fit.used]
    fitted = {
        "target": target,
        "iou": float(iou),
        "reference": resolved,
        "raters": None if uses_reference else list(dataset.rater_names),
        "detections": detections_name,
        "dataset": str(dataset.manifest),
        "identity": _identity(detections),
        "n_detections": n_used,
        "n_images": fit.n_images,
        # left out: on images the hard target's reference did not label (none with complete coverage)
        "n_detections_left_out": len(detections) - n_used,
        "n_images_left_out": fit.n_images_total - fit.n_images,
        "mean_score": float(np.mean(scores)),
        "mean_target": float(np.mean(fit.values)),
    }
    return fit_calibrator(method, scores, fit.values, features, detections_name, fitted)


def recalibrate(detections: Detections, calibrator: Calibrator, sizes: ImageSizes | None, detections_name: str,
                calibrator_name: str) -> Detections:
    """The detections with calibrated scores; ``sizes`` (image id -> (width, height)) for detection-aware."""
    check_uncalibrated(detections, detections_name)
    features = None
    if calibrator.needs_boxes:
        if sizes is None:
            raise UserError("a detection-aware calibrator needs the images' sizes (a dataset or an image folder)",
                            calibrator_name)
        features = detection_box_features(detections, sizes, detections_name)
    scores = calibrator.predict(detections.scores, features)
    meta = copy.deepcopy(detections.meta) if isinstance(detections.meta, dict) else {}
    fitted = calibrator.fitted
    meta["calibration"] = {
        "method": calibrator.method,
        "target": fitted.get("target"),
        "iou": fitted.get("iou"),
        "reference": fitted.get("reference"),
        "fitted_on": fitted.get("detections"),
        "fitted_identity": fitted.get("identity"),
        "calibrator": calibrator_name,
    }
    return Detections(
        image_ids=detections.image_ids.copy(),
        image_id=detections.image_id.copy(),
        category_id=detections.category_id.copy(),
        boxes=detections.boxes.copy(),
        scores=scores,
        extra=copy.deepcopy(detections.extra),
        meta=meta,
    )
