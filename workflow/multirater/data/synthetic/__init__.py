"""Synthetic multi-rater organoid data: brightfield-like images and simulated raters.

- ``scene``: organoids with a latent viability that shows in their appearance, debris, and the pixels;
- ``raters``: a simulated pretrained detector and the raters who correct its proposals (each rater's
  style: a systematic and a random part);
- ``presets``: the named rater models (``classic``, ``biased``, ``noisy``) and per-rater overrides;
- ``generation``: one image with every rater's annotations (and second passes), and a dataset folder;
- ``base``: the base dataset (other images, labelled by the simulated detector) of the pretrain job.

The names below are imported on first use, so the CLI can read the presets without loading scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BASE_RATER": "base",
    "generate_base": "base",
    "MIN_SIZE_PX": "generation",
    "SyntheticImage": "generation",
    "generate": "generation",
    "synthesize_image": "generation",
    "DEFAULT_PRESET": "presets",
    "PRESETS": "presets",
    "rater_names": "presets",
    "rater_styles": "presets",
    "DetectorStyle": "raters",
    "RandomStyle": "raters",
    "RaterStyle": "raters",
    "SystematicStyle": "raters",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
