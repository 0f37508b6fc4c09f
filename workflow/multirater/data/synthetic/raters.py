"""Simulated annotators: a pretrained detector that proposes boxes, and raters who correct it.

A rater's style has a systematic part, the same on every pass over an image (what they include: a
viability threshold and a smallest size; how they draw: box margin and how often they redraw a
proposal), and a random part, drawn afresh on every pass (perception noise on viability, overlooked
organoids and wrongly deleted proposals, spurious boxes on debris, box jitter). Each rater keeps the
proposals they agree with (provenance ``pretrained``) and adds the organoids the detector missed
(``manual``). Consensus labels (test images) are a joint decision: the middle threshold, tight
boxes, nothing missed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

# Organoid sizes scale with the image up to 256 px (``scene.sample_organoids``); ``min_side`` does too.
SIZE_REFERENCE_PX = 256


@dataclass(frozen=True)
class SystematicStyle:
    """What a rater does the same way on every pass: their labelling bias."""

    threshold: float  # keeps organoids whose perceived viability is at least this
    tightness: float  # margin each side of the object, as a fraction of its size (0 = tight)
    redraw: float  # share of kept proposals redrawn in their own style (0 or 1: the same on every pass)
    min_side: float = 0.0  # never labels organoids smaller than this (box side, px at 256 px)


@dataclass(frozen=True)
class RandomStyle:
    """What varies from one pass to the next: the rater's noise."""

    perception_sd: float  # noise on the viability the rater perceives
    miss_rate: float  # chance of overlooking a kept organoid the detector did not propose
    spurious: float  # mean number of boxes per image on debris (not organoids)
    jitter: float  # sd of each box edge, as a fraction of the object's size
    reject_rate: float = 0.0  # chance of deleting, by oversight, a proposal of an organoid they keep


@dataclass(frozen=True)
class RaterStyle:
    """How one annotator decides and draws: a systematic and a random part."""

    systematic: SystematicStyle
    random: RandomStyle

    @property
    def threshold(self) -> float:
        """The viability inclusion threshold (the main systematic setting)."""
        return self.systematic.threshold

    def as_dict(self) -> dict[str, float]:
        """Every setting by name (systematic, then random): the keys per-rater overrides use."""
        return {**_values(self.systematic), **_values(self.random)}

    @staticmethod
    def from_dict(values: dict[str, float]) -> RaterStyle:
        """The style with the settings of ``as_dict`` (every key of both parts needed)."""
        return RaterStyle(
            SystematicStyle(**{f.name: float(values[f.name]) for f in fields(SystematicStyle)}),
            RandomStyle(**{f.name: float(values[f.name]) for f in fields(RandomStyle)}),
        )


def _values(part: SystematicStyle | RandomStyle) -> dict[str, float]:
    return {f.name: getattr(part, f.name) for f in fields(part)}


SYSTEMATIC_SETTINGS = tuple(f.name for f in fields(SystematicStyle))
RANDOM_SETTINGS = tuple(f.name for f in fields(RandomStyle))

CONSENSUS_STYLE = RaterStyle(
    SystematicStyle(threshold=0.32, tightness=0.0, redraw=1.0),
    RandomStyle(perception_sd=0.03, miss_rate=0.0, spurious=0.0, jitter=0.015),
)


@dataclass(frozen=True)
class DetectorStyle:
    """The simulated pretrained detector that pre-annotates every image."""

    base_recall: float = 0.35  # recall on a dead organoid ...
    viability_recall: float = 0.5  # ... plus this much times viability
    false_positives: float = 1.0  # mean proposals per image on debris
    jitter: float = 0.06
    tightness: float = 0.04


def tight_box(poly: np.ndarray, size: int) -> np.ndarray:
    """xyxy of the outline clipped to the image."""
    p = np.clip(poly, 0, size)
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])


def draw_box(
    rng: np.random.Generator, tight: np.ndarray, jitter: float, margin: float, size: int
) -> np.ndarray | None:
    """An annotator's xyxy box around a tight box: a margin each side plus per-edge noise."""
    w, h = tight[2] - tight[0], tight[3] - tight[1]
    scale = np.array([w, h, w, h])
    sign = np.array([-1.0, -1.0, 1.0, 1.0])
    box = tight + sign * margin * scale + rng.normal(0.0, jitter, 4) * scale
    box = np.clip(box, 0, size)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    return box


@dataclass
class SceneObject:
    """Something an annotator may box: an organoid (with viability) or a debris particle."""

    tight: np.ndarray  # xyxy
    polygon: np.ndarray  # outline (x, y)
    viability: float | None  # None for debris


@dataclass
class SceneLabels:
    """The objects of a scene (organoids, then debris large enough to be boxed), the detector's proposals
    and, per source, the object of each box of its first pass (in the order of its annotations)."""

    objects: list[SceneObject]
    proposed: set[int]
    labelled: dict[str, list[int]]


def side_at_reference(tight: np.ndarray, size: int) -> float:
    """Geometric-mean side of a box, in px of a 256-px image (organoids scale with images up to 256 px)."""
    side = float(np.sqrt(max(tight[2] - tight[0], 0.0) * max(tight[3] - tight[1], 0.0)))
    return side / min(size / SIZE_REFERENCE_PX, 1.0)


class Label(NamedTuple):
    """One box a rater drew, and which object of the scene it is (see :func:`annotate_objects`)."""

    box: np.ndarray  # xyxy
    polygon: np.ndarray
    source: str  # provenance: pretrained (a kept proposal) or manual
    object: int  # the object's index: organoids 0..n-1, then debris n, n+1, ...


def annotate(
    rng: np.random.Generator,
    objects: list[SceneObject],
    proposals: dict[int, np.ndarray],
    debris_objects: list[SceneObject],
    style: RaterStyle,
    size: int,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """One pass of a rater over the detector's proposals: (xyxy box, polygon, provenance) per object.

    ``rng`` drives the random part only; the systematic part is applied the same way on every pass.
    """
    return [(label.box, label.polygon, label.source)
            for label in annotate_objects(rng, objects, proposals, debris_objects, style, size)]


def annotate_objects(
    rng: np.random.Generator,
    objects: list[SceneObject],
    proposals: dict[int, np.ndarray],
    debris_objects: list[SceneObject],
    style: RaterStyle,
    size: int,
) -> list[Label]:
    """:func:`annotate`, each box with the index of the object it is of (debris j: ``len(objects) + j``)."""
    bias, noise = style.systematic, style.random
    out = []
    for i, obj in enumerate(objects):
        perceived = obj.viability + rng.normal(0.0, noise.perception_sd)
        proposed = proposals.get(i)
        # Decide the rater's draws up front so every rater consumes the same random stream.
        miss, redraw = rng.random(), rng.random()
        if perceived < bias.threshold or side_at_reference(obj.tight, size) < bias.min_side:
            continue
        if proposed is not None:
            if miss < noise.reject_rate:  # one draw serves both slips: an object is proposed or not
                continue
            box = draw_box(rng, obj.tight, noise.jitter, bias.tightness, size) if redraw < bias.redraw else proposed
            source = "pretrained"
        else:
            if miss < noise.miss_rate:
                continue
            box = draw_box(rng, obj.tight, noise.jitter, bias.tightness, size)
            source = "manual"
        if box is not None:
            out.append(Label(box, obj.polygon, source, i))
    # Spurious boxes: debris that the rater takes for a small organoid.
    n_spurious = min(int(rng.poisson(noise.spurious)), len(debris_objects))
    for j in rng.choice(len(debris_objects), n_spurious, replace=False) if n_spurious else []:
        d = debris_objects[int(j)]
        box = draw_box(rng, d.tight, noise.jitter, bias.tightness + 0.15, size)
        if box is not None:
            out.append(Label(box, d.polygon, "manual", len(objects) + int(j)))
    return out


def circle_polygon(cx: float, cy: float, r: float) -> np.ndarray:
    """A 12-gon outline (x, y) of a round debris particle, so it can be boxed like an organoid."""
    theta = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    return np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)])
