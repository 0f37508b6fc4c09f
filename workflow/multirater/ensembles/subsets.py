"""Fusion of many subsets of one list of models, sharing what every subset would repeat.

A subset's fusion (``fuse`` on some of the models, in the list's order) pools their boxes in step 1's order and
links every pair of boxes of different models with IoU >= the threshold. Both are the restriction of the same
work done once on all the models: the subset's boxes in the whole pool's order are its own pool (ties go to the
model's place in the list, kept by a subset in list order), and a pair's IoU does not depend on which other
models are there. So :class:`SubsetFusion` pools and links once, and a subset only selects its boxes and their
pairs before grouping them: its output is ``fuse``'s on those models, bit for bit (tests/test_fusion.py).
Memory: the whole pool and its pairs (proportional to the boxes of all the models).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multirater.core.errors import UserError
from multirater.core.fusion import _check_options, _pool, fused_detections, groups_of_pairs, pool_pairs
from multirater.io.detections import Detections


class SubsetFusion:
    """The models' pool and linked pairs, computed once; :meth:`fuse` fuses any subset of them."""

    def __init__(self, models: list[Detections], iou: float = 0.5):
        _check_options(len(models), iou, None, "ensemble", "mean")
        self.models = models
        self.iou = float(iou)
        self.pool = _pool(models)
        self.pairs = pool_pairs(self.pool, self.iou) if len(self.pool["boxes"]) else (
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))

    def fuse(self, chosen: Sequence[int], sources: list[str] | None = None, score_norm: str = "ensemble",
             merge: str = "mean") -> Detections:
        """``fuse([models[k] for k in chosen], iou, sources, score_norm, merge)``; ``chosen`` in increasing order."""
        chosen = np.asarray(chosen, dtype=np.int64)
        if chosen.ndim != 1 or not len(chosen) or np.any(np.diff(chosen) <= 0) or chosen[0] < 0 \
                or chosen[-1] >= len(self.models):
            raise UserError(f"a subset must name models 0..{len(self.models) - 1} in increasing order, "
                            f"got {chosen.tolist()}")
        models = [self.models[k] for k in chosen]
        _check_options(len(models), self.iou, sources, score_norm, merge)
        position = np.full(len(self.models), -1, dtype=np.int64)
        position[chosen] = np.arange(len(chosen))
        keep = position[self.pool["model"]] >= 0
        pool = {k: v[keep] for k, v in self.pool.items()}
        pool["model"] = position[pool["model"]]  # the model's place in the subset, as fuse numbers it
        new = np.cumsum(keep) - 1
        i, j, overlap = self.pairs
        linked = keep[i] & keep[j]
        pairs = (new[i[linked]], new[j[linked]], overlap[linked])
        group, first = groups_of_pairs(pool["boxes"], pool["model"], pairs, self.iou)
        return fused_detections(models, pool, group, first, self.iou, sources, score_norm, merge)
