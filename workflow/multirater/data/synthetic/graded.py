"""The ``graded`` rater model: one knob, ``bias`` in [0, 1], moves the raters' disagreement from noise to bias.

- At bias 0 both raters have one style: the consensus's viability threshold, no smallest size, and a
  large random part (perception noise, overlooked organoids). They differ by noise alone, so a rater
  repeats themselves about as well as they agree with the other (intra- = inter-rater F1).
- At bias 1 the random part is small and the raters differ by systematic thresholds on what the pixels
  show: rater 1 takes dying organoids too (viability threshold 0.12) but never small ones (side below
  13.5 px at 256 px); rater 2 takes only viable ones (threshold 0.50), small ones included. So each
  rater has objects of their own (the ``biased`` preset's inclusion rules).
- In between, the noise falls linearly with the bias and the thresholds part just enough to keep
  inter-rater agreement where it is at the ends (``SEPARATION``): intra-rater F1 rises about linearly
  with the bias while inter-rater F1@IoU0.5 stays at about 0.61.

Both raters draw every box alike at every bias (tight, redrawn, the same jitter), so agreement at a
strict IoU (0.75) measures no box style. The calibration (SEPARATION and the noise at bias 0) was
measured on 400 images of 256 px (seed 7) with the agreement stage's F1; the test suite checks the
statistics at bias 0 and 1 from written files.
"""

from __future__ import annotations

import math

import numpy as np

from multirater.core.errors import UserError
from multirater.data.synthetic.raters import CONSENSUS_STYLE, RandomStyle, RaterStyle, SystematicStyle

GRADED = "graded"

# The thresholds at bias 1, about the consensus's viability threshold; rater 1's smallest organoid.
CENTRE = CONSENSUS_STYLE.threshold
RATER1_BELOW, RATER2_ABOVE = 0.20, 0.18
RATER1_MIN_SIDE = 13.5
# The random part at bias 1 (small) and at bias 0 (the whole disagreement); linear in between.
QUIET = {"perception_sd": 0.05, "miss_rate": 0.05}
LOUD = {"perception_sd": 0.20, "miss_rate": 0.245}
# The same for both raters at every bias: how they draw, and debris taken for organoids.
DRAWING = {"tightness": 0.0, "redraw": 1.0, "jitter": 0.04, "spurious": 0.2}
# How far apart the thresholds are (0: one style, 1: the full bias) at bias k/8, k = 0..8, so that
# inter-rater F1@IoU0.5 stays at its bias-1 value while the noise falls; linear in between.
SEPARATION = (0.0, 0.465, 0.652, 0.777, 0.832, 0.871, 0.918, 0.965, 1.0)


def check_bias(bias: float | None, preset: str = GRADED) -> float:
    """The bias as a float in [0, 1]; a missing or out-of-range bias is an error naming ``bias``."""
    if bias is None:
        raise UserError(f"the {preset} preset needs a bias in [0, 1] (0: the raters differ by noise, 1: by "
                        "systematic thresholds)", None, "bias")
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias) \
            or not 0.0 <= bias <= 1.0:
        raise UserError(f"must be between 0 and 1, got {bias!r}", None, "bias")
    return float(bias)


def separation(bias: float) -> float:
    """How far apart the raters' thresholds are at ``bias`` (0: none, 1: the full bias)."""
    return float(np.interp(bias, np.linspace(0.0, 1.0, len(SEPARATION)), SEPARATION))


def graded_pair(bias: float) -> tuple[RaterStyle, RaterStyle]:
    """The first and last rater's styles at ``bias`` (checked)."""
    bias = check_bias(bias)
    s = separation(bias)
    noise = {k: QUIET[k] + (1.0 - bias) * (LOUD[k] - QUIET[k]) for k in QUIET}

    def style(threshold: float, min_side: float) -> RaterStyle:
        return RaterStyle(
            SystematicStyle(threshold=threshold, tightness=DRAWING["tightness"], redraw=DRAWING["redraw"],
                            min_side=min_side),
            RandomStyle(perception_sd=noise["perception_sd"], miss_rate=noise["miss_rate"],
                        spurious=DRAWING["spurious"], jitter=DRAWING["jitter"], reject_rate=noise["miss_rate"]),
        )

    return style(CENTRE - s * RATER1_BELOW, s * RATER1_MIN_SIDE), style(CENTRE + s * RATER2_ABOVE, 0.0)
