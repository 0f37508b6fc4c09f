"""Where the workflow keeps each approach's files (the calibration rules' input functions use this).

An ensemble approach (lse, rse) is the largest ensemble of its kind: ``ensembles/<kind>/<S>/fused.json`` on the
test set, ``val_ensembles/<kind>/<S>/fused.json`` on validation, ``apply/<kind>/<S>/fused.json`` on new images.
A single-model approach (ls, rs-<rater>) is its best-ranked model, read from the members file of the largest
ensemble of its kind (``approaches.best_model``), a checkpoint output that ``members_file`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

from multirater.calibration.approaches import UNCALIBRATED, best_model, ensemble_holding, is_ensemble
from multirater.ensembles.files import APPLY, TEST, VALIDATION, fused_file
from multirater.selection.members import read_members

SPLIT_ENSEMBLES = {"test": TEST, "val": VALIDATION}


class ApproachFiles:
    """The files of every approach under ``results``; ``largest`` is the largest ensemble size and
    ``members_file(kind)`` the path of that ensemble's members file (Snakemake: a checkpoint's output)."""

    def __init__(self, results: str, largest: int, members_file: Callable[[str], str]) -> None:
        self.results = results
        self.largest = largest
        self.members_file = members_file

    def best_config_id(self, approach: str) -> str:
        """The config id of a single-model approach: its first (best-ranked) member in the largest ensemble."""
        members = self.members_file(ensemble_holding(approach))
        return best_model(read_members(members), approach, members)

    def detections(self, approach: str, split: str) -> str:
        """The approach's raw detections on ``split`` (val or test)."""
        if is_ensemble(approach):
            return fused_file(self.results, SPLIT_ENSEMBLES[split], approach, self.largest)
        return f"{self.results}/predictions/{split}/{approach}/{self.best_config_id(approach)}.json"

    def apply_detections(self, approach: str) -> str:
        """The approach's raw detections on the apply target's new images."""
        if is_ensemble(approach):
            return fused_file(self.results, APPLY, approach, self.largest)
        return f"{self.results}/apply/predictions/{approach}/{self.best_config_id(approach)}.json"

    def test_detections(self, approach: str, variant: str) -> str:
        """The test detections a variant measures: the approach's own, or their recalibrated copy."""
        if variant == UNCALIBRATED:
            return self.detections(approach, "test")
        return f"{self.results}/calibration/{approach}/{variant}/test.json"

    def metrics(self, approach: str, variant: str) -> str:
        """The metrics file of a variant: the experiment's own when uncalibrated."""
        if variant != UNCALIBRATED:
            return f"{self.results}/metrics/calibration/{approach}/{variant}.json"
        if is_ensemble(approach):
            return f"{self.results}/metrics/ensembles/{approach}/{self.largest}.json"
        return f"{self.results}/metrics/models/{approach}/{self.best_config_id(approach)}.json"
