"""Whose labels a model learns from and is validated on: label sampling (LS), rater-specific (RS), union.

Raters may label different images; each strategy uses only the labels that exist:

- ``ls``: every time an image is drawn for an epoch, one of the raters *who labelled that image* is
  chosen at random from a generator seeded with (seed, epoch, image id): a resumed run replays the
  same choices, and where every rater labelled the image the choice is the one among all raters.
  Validated against each rater on the validation images that rater labelled.
- ``rs-<rater>``: trained on that rater's training images, validated on that rater's validation images.
- ``union`` (the ``pretrain`` job): the boxes of everyone who labelled the image together, validated like LS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from multirater.core.strategies import LS, RS, UNION, rater_specific


@dataclass(frozen=True)
class Strategy:
    """Whose labels a model learns from (``kind``: ls, rs or union; ``rater`` for rs)."""

    kind: str  # a family of multirater.core.strategies: ls, rs or union
    rater: str | None = None

    @property
    def token(self) -> str:
        """The canonical name used in paths and metadata: ``ls``, ``rs-<rater>``, ``union``."""
        return rater_specific(self.rater) if self.kind == RS else self.kind


def sampled_rater(seed: int, epoch: int, image_id: int, n_raters: int) -> int:
    """Index of the rater whose labels image ``image_id`` gets in ``epoch`` (label sampling), among
    the ``n_raters`` who labelled it."""
    return int(np.random.default_rng([seed, epoch, image_id]).integers(n_raters))


SourcesRule = Callable[[Strategy, list[str], int, int, int], list[str]]
# Each family's rule: (strategy, the image's raters, seed, epoch, image id) -> whose boxes form the target.
TRAINING_SOURCES: dict[str, SourcesRule] = {
    LS: lambda strategy, raters, seed, epoch, image_id: [raters[sampled_rater(seed, epoch, image_id, len(raters))]],
    RS: lambda strategy, raters, seed, epoch, image_id: [strategy.rater],
    UNION: lambda strategy, raters, seed, epoch, image_id: list(raters),
}


def training_sources(strategy: Strategy, image_raters: list[str], seed: int, epoch: int, image_id: int) -> list[str]:
    """The annotation sources whose boxes (together) form an image's target in this epoch.

    ``image_raters``: the raters who labelled the image, in the dataset's rater order.
    """
    return TRAINING_SOURCES[strategy.kind](strategy, image_raters, seed, epoch, image_id)


def validation_sources(strategy: Strategy, rater_names: list[str]) -> list[str]:
    """Each validation image is scored once against each of these sources' labels (where that
    source labelled it)."""
    return [strategy.rater] if strategy.kind == RS else list(rater_names)


def epoch_order(seed: int, epoch: int, image_ids: list[int]) -> list[int]:
    """The order in which the training images are drawn in ``epoch``."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    return [image_ids[i] for i in rng.permutation(len(image_ids))]
