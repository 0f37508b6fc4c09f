"""Which files the review rules (workflow/rules/review.smk) read for a review subject: ``apply`` (the new images
of ``apply.images``) or ``test`` (the test images). Either way the detections are those ``apply`` counts with: the
calibrated headline approach when calibration is on, else the apply ensemble (``apply.kind``, ``apply.size``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multirater.calibration.approach_files import ApproachFiles
from multirater.calibration.approaches import headline
from multirater.ensembles.files import APPLY, TEST, fused_file

SUBJECTS = ("test", "apply")


def review_subjects(config: dict[str, Any]) -> list[str]:
    """The subjects a config can review: the test images always, the new images when apply.images is set; the
    ``review`` target builds the last."""
    return ["test", "apply"] if config["apply"]["images"] else ["test"]


def review_detections(subject: str, config: dict[str, Any], apply_target: Callable[[], tuple[str, int]],
                      files: ApproachFiles, results: str) -> str:
    """The detections file a subject reviews; ``apply_target()`` is the apply ensemble's (kind, size), checked
    (``multirater.workflow_config.apply_ensemble``)."""
    if config["calibration"]["enabled"]:
        approach, variant = headline(config)
        if subject == "apply":
            return f"{results}/apply/{approach}/{variant}/detections.json"
        return files.test_detections(approach, variant)
    if subject == "apply":
        kind, size = apply_target()
        return fused_file(results, APPLY, kind, size)
    apply, sizes = config["apply"], config["ensembles"]["sizes"]
    size = apply["size"] if apply["size"] in sizes else max(sizes)
    return fused_file(results, TEST, apply["kind"], size)


def review_images_flag(subject: str, config: dict[str, Any], dataset: str) -> str:
    """The review and export commands' flag naming the subject's images: the apply folder, or the dataset."""
    if subject == "apply":
        return f"--images {config['apply']['images']}"
    return f"--dataset {dataset}"
