"""Where the ensembles stage writes an ensemble's files, in one place: the rules (ensembles.smk, apply.smk,
common.smk), the calibration stage's approach files and the evidence summary take the paths from here."""

from __future__ import annotations

# Where ensembles lie under the results folder: the experiment's on the test set, the same ensembles on
# validation (calibration), and the apply target's on new images.
TEST, VALIDATION, APPLY = "ensembles", "val_ensembles", "apply"


def fused_file(results: object, stage: str, kind: str, size: object) -> str:
    """An ensemble's fused detections, ``<results>/<stage>/<kind>/<size>/fused.json`` (any part may be a
    ``{wildcard}``)."""
    return f"{results}/{stage}/{kind}/{size}/fused.json"
