"""Complete-linkage grouping of pooled boxes, given the linked pairs (IoU >= threshold, different models).

The rule (see ``fusion``): boxes taken in order (their index); the first remaining box opens a group, which then
takes, one at a time, the remaining box from a model not yet in it whose minimum IoU with every member is largest,
while that minimum is >= the threshold (ties: the earlier box). A group only holds boxes linked to its opener.

Done in rounds, many groups at once. A remaining box is *free* when no earlier remaining box lies within two
links of it: nothing built before its turn can take it, or take any box it is linked to, so it opens a group,
and that group can be built now from its linked boxes alone, exactly as in the sequential rule. Free boxes are
never linked to each other nor share a linked box, so their groups are built side by side, one member per step
for all of them (at most one step per model). Boxes without links open their own groups in the first round.

On detections a few dozen rounds finish the job. When a round frees only a few boxes (e.g. a long chain of boxes
each linked to the next, scores falling along it), the rest are grouped one group at a time.
"""

from __future__ import annotations

import numpy as np

from multirater.core.boxes import corners, iou_of_corners

# Below this many free boxes in a round, the remaining boxes are grouped one group at a time.
_SEQUENTIAL_BELOW = 256


class _Links:
    """The links between remaining boxes, as pairs ``first`` < ``second`` with their ``iou``, sorted by ``first``.

    A free box is always the ``first`` of its links (an earlier linked box would keep it from being free), so
    the links of the free boxes are runs of this order.
    """

    def __init__(self, i: np.ndarray, j: np.ndarray, overlap: np.ndarray):
        first, second = np.minimum(i, j), np.maximum(i, j)
        order = np.argsort(first, kind="stable")
        self.first, self.second, self.iou = first[order], second[order], overlap[order]

    def keep(self, remaining: np.ndarray) -> None:
        """Forget the links of boxes that are no longer remaining."""
        kept = np.flatnonzero(remaining[self.first] & remaining[self.second])
        self.first, self.second, self.iou = self.first[kept], self.second[kept], self.iou[kept]

    def free(self, remaining: np.ndarray) -> np.ndarray:
        """Remaining boxes with no earlier remaining box within two links."""
        box = np.arange(len(remaining))
        earliest = box.copy()  # the earliest of each box and its linked boxes
        np.minimum.at(earliest, self.second, self.first)
        # A box that is the second of a link has an earlier linked box: never free. So only the boxes without
        # links (free if remaining) and the firsts need the earliest box two links away.
        within_two = earliest.copy()
        if len(self.first):  # links come in runs by first: a reduction per run
            starts = np.flatnonzero(np.r_[True, self.first[1:] != self.first[:-1]])
            run_first = self.first[starts]
            nearest = np.minimum.reduceat(earliest[self.second], starts)
            within_two[run_first] = np.minimum(within_two[run_first], nearest)
        return np.flatnonzero(remaining & (within_two == box))


def _grow(
    opener: np.ndarray,
    owner: np.ndarray,
    candidate: np.ndarray,
    min_iou: np.ndarray,
    box_corners: tuple[np.ndarray, ...],
    model: np.ndarray,
    threshold: float,
) -> None:
    """Build the groups of several openers side by side, one member per step each.

    ``owner``/``candidate``/``min_iou``: each opener's linked boxes, in runs by owner, with their IoU to it.
    Sets ``opener[box]`` for every box that joins.
    """
    while len(owner):
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        lengths = np.diff(np.r_[starts, len(owner)])
        best = np.maximum.reduceat(min_iou, starts)
        joins = best >= threshold
        if not joins.any():
            return
        # the earliest box reaching its group's best minimum
        at_best = np.where(min_iou == np.repeat(best, lengths), candidate, len(opener))
        picked = np.where(joins, np.minimum.reduceat(at_best, starts), -1)
        opener[picked[joins]] = owner[starts[joins]]
        member = np.repeat(picked, lengths)
        left = np.flatnonzero((member >= 0) & (candidate != member))
        owner, candidate, member, min_iou = owner[left], candidate[left], member[left], min_iou[left]
        overlap = iou_of_corners(tuple(c[candidate] for c in box_corners), tuple(c[member] for c in box_corners))
        # a box below the threshold with the new member, or of its model, can never join this group
        left = np.flatnonzero((overlap >= threshold) & (model[candidate] != model[member]))
        owner, candidate = owner[left], candidate[left]
        min_iou = np.minimum(min_iou[left], overlap[left])


def _one_at_a_time(
    opener: np.ndarray, links: _Links, box_corners: tuple[np.ndarray, ...], model: np.ndarray, threshold: float
) -> None:
    """The sequential rule, one group at a time, for the boxes still without a group."""
    runs = np.searchsorted(links.first, np.arange(len(opener) + 1))
    for box in np.flatnonzero(opener < 0).tolist():
        if opener[box] >= 0:
            continue
        opener[box] = box
        # an opener is the earliest remaining box: its remaining links all have it first
        linked = links.second[runs[box]:runs[box + 1]]
        still = np.flatnonzero(opener[linked] < 0)
        if len(still):
            min_iou = links.iou[runs[box]:runs[box + 1]][still]
            _grow(opener, np.full(len(still), box), linked[still], min_iou, box_corners, model, threshold)


def group_openers(
    boxes: np.ndarray,
    model: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    overlap: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """The opener (index of the group's first box) of every box.

    ``boxes`` (N, 4) xywh and ``model`` (N,) in the rule's order; ``i``, ``j``, ``overlap``: the linked pairs
    (IoU >= threshold, different models) with their IoU.
    """
    n = len(model)
    box_corners = tuple(np.ascontiguousarray(c) for c in corners(np.asarray(boxes).reshape(-1, 4)))
    opener = np.full(n, -1, dtype=np.int64)
    links = _Links(i, j, overlap)
    remaining = np.ones(n, dtype=bool)
    while remaining.any():
        free = links.free(remaining)
        if len(free) < _SEQUENTIAL_BELOW and len(free) < remaining.sum():
            _one_at_a_time(opener, links, box_corners, model, threshold)
            break
        opener[free] = free
        is_free = np.zeros(n, dtype=bool)
        is_free[free] = True
        theirs = np.flatnonzero(is_free[links.first])
        _grow(opener, links.first[theirs], links.second[theirs], links.iou[theirs], box_corners, model, threshold)
        remaining = opener < 0
        links.keep(remaining)
    return opener
