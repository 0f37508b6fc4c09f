"""The calibration stage's names, one registry each: the calibrator methods and the targets they are fitted to.
Light on purpose (no numpy): the Snakefile's wildcard constraints and the CLI's choices are made from these;
tests/test_registries.py keeps the schema's enums equal to them. A new method of an existing family (isotonic,
or logistic on logit(score) with or without the box features and the intercept) is one entry of ``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from multirater.core.errors import UserError


@dataclass(frozen=True)
class Method:
    """How a calibrator maps a raw score s (and its box) to a probability (``calibrators`` has the formulas)."""

    isotonic: bool = False  # a non-decreasing step fit of s; else sigmoid of a linear map of logit(s)
    box_features: bool = False  # the linear map also reads the box centre and size relative to the image
    intercept: bool = True  # the linear map has a shift b (temperature scaling has none)


METHODS: dict[str, Method] = {
    "logistic": Method(),
    "temperature": Method(intercept=False),
    "isotonic": Method(isotonic=True),
    "detection-aware": Method(box_features=True),
}


@dataclass(frozen=True)
class Target:
    """What a detection's target y in [0, 1] is (``targets`` builds them)."""

    reference: bool  # hard: 1 when it matches a box of one reference label set; soft: the share of raters matching


TARGETS: dict[str, Target] = {
    "hard": Target(reference=True),
    "soft": Target(reference=False),
}


def method_spec(method: str, file: object = None) -> Method:
    """The registered method ``method``; an unknown name is a UserError naming the known ones."""
    if not isinstance(method, str) or method not in METHODS:
        raise UserError(f"unknown method {method!r} (known: {', '.join(METHODS)})", file, "method")
    return METHODS[method]


def target_spec(target: str) -> Target:
    """The registered target ``target``; an unknown name is a UserError naming the known ones."""
    if not isinstance(target, str) or target not in TARGETS:
        raise UserError(f"unknown target {target!r} (known: {', '.join(TARGETS)})", None, "target")
    return TARGETS[target]

