"""Whose labels a model learns from and is validated on: label sampling (LS), rater-specific (RS), union.

- ``ls``: every time an image is drawn for an epoch, one rater's annotation set is chosen at random
  from a generator seeded with (seed, epoch, image id): a resumed run replays the same choices.
  Validated on every validation image once per rater.
- ``rs-<rater>`` (or ``rs:<rater>``): that rater's annotations only, validated on them.
- ``union`` (the ``pretrain`` job): all raters' boxes of an image together, validated like LS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multirater.core.errors import UserError


@dataclass(frozen=True)
class Strategy:
    kind: str  # "ls" | "rs" | "union"
    rater: str | None = None

    @property
    def token(self) -> str:
        """The canonical name used in paths and metadata: ``ls``, ``rs-<rater>``, ``union``."""
        return f"rs-{self.rater}" if self.kind == "rs" else self.kind


def parse_strategy(token: str, rater_names: list[str]) -> Strategy:
    """``ls``, ``union``, ``rs-<rater>`` or ``rs:<rater>``; the rater must be in the dataset."""
    if token in ("ls", "union"):
        return Strategy(token)
    for prefix in ("rs-", "rs:"):
        if token.startswith(prefix):
            rater = token[len(prefix):]
            if rater not in rater_names:
                raise UserError(f"unknown rater {rater!r}; the dataset's raters are {rater_names}", None, "--strategy")
            return Strategy("rs", rater)
    raise UserError(f"must be 'ls' or 'rs-<rater>' (raters: {rater_names}), got {token!r}", None, "--strategy")


def sampled_rater(seed: int, epoch: int, image_id: int, n_raters: int) -> int:
    """Index of the rater whose labels image ``image_id`` gets in ``epoch`` (label sampling)."""
    return int(np.random.default_rng([seed, epoch, image_id]).integers(n_raters))


def training_sources(strategy: Strategy, rater_names: list[str], seed: int, epoch: int, image_id: int) -> list[str]:
    """The annotation sources whose boxes (together) form an image's target in this epoch."""
    if strategy.kind == "rs":
        return [strategy.rater]
    if strategy.kind == "union":
        return list(rater_names)
    return [rater_names[sampled_rater(seed, epoch, image_id, len(rater_names))]]


def validation_sources(strategy: Strategy, rater_names: list[str]) -> list[str]:
    """Each validation image is scored once against each of these sources' labels."""
    return [strategy.rater] if strategy.kind == "rs" else list(rater_names)


def epoch_order(seed: int, epoch: int, image_ids: list[int]) -> list[int]:
    """The order in which the training images are drawn in ``epoch``."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    return [image_ids[i] for i in rng.permutation(len(image_ids))]
