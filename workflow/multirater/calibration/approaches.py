"""The approaches the calibration stage compares, and the workflow config's ``calibration`` section.

An approach is one way of getting confidences from the experiment's models:

- ``ls``: the best-ranked label-sampling model (rank 1 by validation mAP);
- ``rs-<rater>``: the best-ranked rater-specific model of that rater (one approach per rater: each RS model is
  ranked on its own rater's validation labels, so RS models of different raters cannot be ranked together);
- ``lse`` / ``rse``: the largest configured LSE and RSE.

Each is compared uncalibrated and after every configured calibrator (method x target), the variants
``uncalibrated`` and ``<method>-<target>`` (e.g. ``logistic-soft``). The workflow finds an approach's single
model in the members file of the largest ensemble of its kind: members are listed best-ranked first
(``multirater.selection.ranking.ensemble_members``), so the first member of a strategy is its rank-1 model.
"""

from __future__ import annotations

from typing import Any

from multirater.core.errors import UserError
from multirater.core.strategies import ENSEMBLE_KINDS, ensemble_of, strategy_names

ENSEMBLE_APPROACHES = tuple(ENSEMBLE_KINDS)
UNCALIBRATED = "uncalibrated"


def approach_names(raters: list[str]) -> list[str]:
    """Every approach of an experiment with these raters: ls, rs-<rater> per rater, lse, rse."""
    return [*strategy_names(raters), *ENSEMBLE_APPROACHES]


def variant_names(methods: list[str], targets: list[str]) -> list[str]:
    """``uncalibrated``, then ``<method>-<target>`` for every configured method and target, in config order."""
    return [UNCALIBRATED, *[f"{m}-{t}" for m in methods for t in targets]]


def is_ensemble(approach: str) -> bool:
    """Whether the approach is a fused ensemble (lse, rse) rather than one model."""
    return approach in ENSEMBLE_APPROACHES


def ensemble_holding(approach: str) -> str:
    """The ensemble kind whose members include a single-model approach's model: lse for ls, rse for rs-<rater>."""
    return ensemble_of(approach)


def best_model(members: dict[str, Any], approach: str, path: str = "<members file>") -> str:
    """The config id of a single-model approach: the first member of that strategy in ``members`` (a members
    document of the largest ensemble holding it; members come best-ranked first)."""
    for member in members["members"]:
        if member["strategy"] == approach:
            return member["config_id"]
    raise UserError(f"has no {approach} member; cannot find the best-ranked {approach} model", path, "members")


def approach_of(identity: Any, path: str = "<metrics file>") -> tuple[str, str, int]:
    """(approach, kind, size) of a detections identity: a model's strategy (kind ``single``, size 1) or an
    ensemble's kind and size."""
    if isinstance(identity, dict) and isinstance(identity.get("strategy"), str):
        return identity["strategy"], "single", 1
    if isinstance(identity, dict) and identity.get("kind") in ENSEMBLE_APPROACHES:
        return identity["kind"], identity["kind"], int(identity["size"])
    raise UserError(f"must name a model (strategy) or an ensemble (kind {' or '.join(ENSEMBLE_APPROACHES)}), got "
                    f"{identity!r:.80}",
                    path, "identity")


def check_calibration(config: dict[str, Any], raters: list[str], file: str = "config") -> None:
    """The ``calibration`` section's cross-key rules: the headline is one of the compared approaches and
    variants, and the hard target's reference is a label set the dataset has."""
    section = config["calibration"]
    headline = section["headline"]
    approaches = approach_names(raters)
    if headline["approach"] not in approaches:
        raise UserError(f"{headline['approach']!r} is not an approach of this experiment (known: "
                        f"{', '.join(approaches)})", file, "calibration.headline.approach")
    for key, values in (("method", section["methods"]), ("target", section["targets"])):
        if headline[key] not in values:
            raise UserError(f"{headline[key]!r} is not one of calibration.{key}s ({', '.join(values)}); the "
                            f"headline calibrator must be fitted", file, f"calibration.headline.{key}")
    reference = section["reference"]
    references = ["auto", "majority", "consensus", *raters]
    if reference not in references:
        raise UserError(f"{reference!r} is not a label set of the dataset (known: {', '.join(references)})", file,
                        "calibration.reference")


def headline(config: dict[str, Any]) -> tuple[str, str]:
    """(approach, variant) of the configured headline: the calibrated approach that ``apply`` uses."""
    h = config["calibration"]["headline"]
    return h["approach"], f"{h['method']}-{h['target']}"
