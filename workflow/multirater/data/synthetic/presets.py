"""Named rater models (presets) and per-rater overrides: the styles of the synthetic raters.

A preset gives the style of the first and of the last rater; with N raters, rater k's settings are
interpolated linearly between the two (one rater: the first style). Per-rater overrides, a list with
one partial style per rater, replace single settings on top of the preset.

- ``classic``: the original generator. Raters differ in threshold (0.19 vs 0.45) but each has
  perception noise 0.3, so most disagreement is noise: two passes of one rater already disagree.
- ``biased``: the paper's premise, "systematic but distinct labelling biases". Small noise; the
  raters differ in what they include (viability threshold, smallest organoid) and how they draw.
- ``noisy``: the same systematic part for every rater; disagreement comes from the random part.

``biased`` and ``noisy`` are calibrated to the paper's Figure 2 (inter-rater F1@IoU0.5 0.58-0.68,
most/least prolific rater 1.3-1.7x the objects) and separate on intra-rater agreement (second passes):
with ``biased`` it is well above inter-rater agreement, with ``noisy`` about equal to it.

``graded`` (``graded.py``) is a family with a ``bias`` in [0, 1]: at 0 the raters differ by noise alone,
at 1 by systematic thresholds alone, at the same inter-rater agreement. The fixed presets take no bias.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.data.synthetic.graded import GRADED, check_bias, graded_pair
from multirater.data.synthetic.raters import RandomStyle, RaterStyle, SystematicStyle

DEFAULT_PRESET = "biased"  # the rater model of generate(), `multirater synth` and the workflow schema


def _style(threshold: float, tightness: float, redraw: float, min_side: float, perception_sd: float,
           miss_rate: float, reject_rate: float, spurious: float, jitter: float) -> RaterStyle:
    return RaterStyle(SystematicStyle(threshold, tightness, redraw, min_side),
                      RandomStyle(perception_sd, miss_rate, spurious, jitter, reject_rate))


# name -> (first rater, last rater). Arguments: systematic threshold, tightness, redraw, min_side;
# random perception_sd, miss_rate, reject_rate, spurious, jitter.
PRESETS: dict[str, tuple[RaterStyle, RaterStyle]] = {
    "classic": (
        _style(0.19, 0.06, 0.3, 0.0, 0.3, 0.2, 0.0, 1.0, 0.1),  # liberal: keeps and adds more
        _style(0.45, 0.0, 0.5, 0.0, 0.3, 0.3, 0.0, 0.6, 0.1),  # strict
    ),
    # Rater 1 takes dying organoids too but skips small ones and draws loose boxes of their own;
    # rater 2 takes only viable ones, small ones included, and keeps the detector's boxes as they are.
    "biased": (
        _style(0.12, 0.10, 1.0, 13.5, 0.05, 0.05, 0.0, 0.3, 0.04),
        _style(0.50, 0.0, 0.0, 0.0, 0.05, 0.05, 0.0, 0.1, 0.04),
    ),
    # One systematic part; rater 2 overlooks more (misses, deleted proposals), rater 1 draws less
    # steadily (jitter), so neither rater repeats themselves better than they agree with the other.
    "noisy": (
        _style(0.30, 0.03, 0.4, 0.0, 0.17, 0.1, 0.0, 0.2, 0.14),
        _style(0.30, 0.03, 0.4, 0.0, 0.17, 0.45, 0.3, 0.1, 0.07),
    ),
}

# Every rater model's name: the fixed presets, then the graded family (the one registry of names).
PRESET_NAMES: tuple[str, ...] = (*PRESETS, GRADED)

# Allowed range of every setting, (low, high) inclusive; None: unbounded. The schema's
# dataset.synthetic.rater_styles says the same (a test keeps them equal).
SETTING_RANGES: dict[str, tuple[float | None, float | None]] = {
    "threshold": (None, None),
    "tightness": (-0.4, None),
    "redraw": (0.0, 1.0),
    "min_side": (0.0, None),
    "perception_sd": (0.0, None),
    "miss_rate": (0.0, 1.0),
    "reject_rate": (0.0, 1.0),
    "spurious": (0.0, None),
    "jitter": (0.0, None),
}


def rater_names(n_raters: int) -> list[str]:
    """rater1 .. raterN: the names of the synthetic raters, in the order of ``rater_styles``."""
    return [f"rater{i + 1}" for i in range(n_raters)]


def preset_pair(preset: str, bias: float | None = None) -> tuple[RaterStyle, RaterStyle]:
    """The first and last rater's styles of a preset; ``bias`` is the graded preset's (and only its)."""
    if preset == GRADED:
        return graded_pair(check_bias(bias, preset))
    if preset not in PRESETS:
        raise UserError(f"unknown rater preset {preset!r} (known: {', '.join(PRESET_NAMES)})", None, "preset")
    if bias is not None:
        raise UserError(f"is a setting of the {GRADED} preset only, not of {preset!r}", None, "bias")
    return PRESETS[preset]


def rater_test_label_set(rater: str) -> str:
    """The test label set of a synthetic rater's own labels of the consensus images: ``<rater>_test``."""
    return f"{rater}_test"


def rater_styles(
    n_raters: int, preset: str = DEFAULT_PRESET, overrides: Sequence[Mapping[str, Any] | None] | None = None,
    bias: float | None = None,
) -> list[RaterStyle]:
    """Styles of ``n_raters`` raters: the preset interpolated from its first to its last rater, then
    each rater's overrides (``overrides[k]`` for rater k+1; ``None`` or empty: none). ``bias``: the
    ``graded`` preset's, in [0, 1] (required there, refused elsewhere)."""
    first, last = (style.as_dict() for style in preset_pair(preset, bias))
    weights = [0.0] if n_raters == 1 else np.linspace(0.0, 1.0, n_raters)
    styles = [{k: float((1 - t) * first[k] + t * last[k]) for k in first} for t in weights]
    for k, override in enumerate(check_overrides(overrides, n_raters)):
        styles[k].update(override)
    return [RaterStyle.from_dict(s) for s in styles]


def check_overrides(overrides: Sequence[Mapping[str, Any] | None] | None, n_raters: int) -> list[dict[str, float]]:
    """The per-rater overrides as plain dicts, checked: one entry per rater, known settings, in range."""
    if not overrides:
        return [{} for _ in range(n_raters)]
    if len(overrides) != n_raters:
        raise UserError(f"gives {len(overrides)} rater styles for {n_raters} raters (one per rater, in order)",
                        None, "rater_styles")
    checked = []
    for k, override in enumerate(overrides):
        entry: dict[str, float] = {}
        for key, value in (override or {}).items():
            item = f"rater_styles[{k}].{key}"
            if key not in SETTING_RANGES:
                raise UserError(f"unknown setting (known: {', '.join(SETTING_RANGES)})", None, item)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise UserError(f"must be a number, got {value!r}", None, item)
            low, high = SETTING_RANGES[key]
            if (low is not None and value < low) or (high is not None and value > high):
                raise UserError(f"must be {_range_text(low, high)}, got {value!r}", None, item)
            entry[key] = float(value)
        checked.append(entry)
    return checked


def _range_text(low: float | None, high: float | None) -> str:
    if high is None:
        return f"at least {low:g}"
    return f"between {low:g} and {high:g}"
