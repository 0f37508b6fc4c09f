"""The settings of an evaluation and their allowed values. A problem names the setting; the command line
(``evaluation/commands.py``) renames it after its flag. No heavy import: the CLI loads this at start."""

from __future__ import annotations

from collections.abc import Sequence

from multirater.core.errors import UserError

MATCHINGS = ("greedy", "hungarian")
DECE_FEATURES = ("cx", "cy", "w", "h")
# Draws of the finite-sample D-ECE reference (evaluation/dece_reference.py); 0 leaves it out.
DECE_REFERENCE_DRAWS = 200


def settings_problem(
    iou_thresholds: Sequence[float],
    bins: int,
    matching: str,
    max_dets: int,
    bootstrap: int,
    dece_features: Sequence[str],
    dece_reference_draws: int = DECE_REFERENCE_DRAWS,
) -> tuple[str, str] | None:
    """The first setting out of range, as (setting name, what is wrong with it), or None."""
    if not iou_thresholds or not all(0.0 < float(t) <= 1.0 for t in iou_thresholds):
        return "iou_thresholds", f"must lie in (0, 1], got {list(iou_thresholds)}"
    if int(bins) < 1:
        return "bins", f"must be at least 1, got {bins}"
    if matching not in MATCHINGS:
        return "matching", f"must be one of {', '.join(MATCHINGS)}, got {matching!r}"
    if int(max_dets) < 1:
        return "max_dets", f"must be at least 1, got {max_dets}"
    if int(bootstrap) < 0:
        return "bootstrap", f"must be 0 or more, got {bootstrap}"
    for feature in dece_features:
        if feature not in DECE_FEATURES:
            return "dece_features", f"takes {' '.join(DECE_FEATURES)}, got {feature!r}"
    if int(dece_reference_draws) < 0:
        return "dece_reference_draws", f"must be 0 or more, got {dece_reference_draws}"
    return None


def check_settings(**settings) -> None:
    """Raise a UserError naming the first setting (keyword of :func:`settings_problem`) out of range."""
    found = settings_problem(**settings)
    if found:
        raise UserError(f"{found[0]} {found[1]}")
