"""Synthetic multi-rater datasets: each image and its annotations, and the dataset folder.

Everything is drawn from ``numpy.random.default_rng([seed, image_index, ...])``, so a dataset is a pure
function of its arguments and the first images stay the same when more are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.data.synthetic.presets import DEFAULT_PRESET, rater_names, rater_styles
from multirater.data.synthetic.raters import (
    CONSENSUS_STYLE,
    DetectorStyle,
    RaterStyle,
    SceneObject,
    annotate,
    circle_polygon,
    draw_box,
    tight_box,
)
from multirater.data.synthetic.scene import Debris, Organoid, render, sample_debris, sample_organoids
from multirater.data.writer import DatasetContent, coco_dict, write_dataset_folder

MIN_SIZE_PX = 64
SECOND_PASS = 2  # the pass number in a second pass's random stream


@dataclass
class SyntheticImage:
    """One generated image, the annotations of every simulated annotator, and the ground truth."""

    image: np.ndarray  # (H, W) float32
    annotations: dict[str, list[tuple[np.ndarray, np.ndarray, str]]]  # source -> (xyxy, polygon, provenance)
    organoids: list[tuple[np.ndarray, float]]  # (outline polygon, viability) of every organoid
    second_pass: dict[str, list[tuple[np.ndarray, np.ndarray, str]]]  # source -> its second pass, if asked for


def synthesize_image(
    seed: int,
    index: int,
    size: int,
    styles: dict[str, RaterStyle],
    detector: DetectorStyle = DetectorStyle(),
    second_pass: bool = False,
    stream: tuple[int, ...] = (),
) -> SyntheticImage:
    """One image and the annotations of every style in ``styles`` (pure function of its arguments).

    With ``second_pass``, every style also annotates the image a second time: the same systematic
    part and detector proposals, a fresh random part (its own random stream). A non-empty ``stream``
    is appended to every random stream's key: other images, e.g. the base dataset's (``base``).
    """
    scene_rng = np.random.default_rng([seed, index, 0, *stream])
    organoids = sample_organoids(scene_rng, size)
    debris = sample_debris(scene_rng, size)
    image = render(scene_rng, size, organoids, debris)
    first, second, objects = annotate_scene(seed, index, size, organoids, debris, styles, detector, second_pass,
                                            stream)
    return SyntheticImage(image, first, [(o.polygon, float(o.viability)) for o in objects], second)


def annotate_scene(
    seed: int,
    index: int,
    size: int,
    organoids: list[Organoid],
    debris: list[Debris],
    styles: dict[str, RaterStyle],
    detector: DetectorStyle = DetectorStyle(),
    second_pass: bool = False,
    stream: tuple[int, ...] = (),
) -> tuple[dict[str, list], dict[str, list], list[SceneObject]]:
    """The annotations of a scene without its pixels: (first pass, second pass, the organoids boxed).

    Each style k draws its first pass from ``[seed, index, 2 + k, *stream]`` and its second from
    ``[seed, index, 2 + k, SECOND_PASS, *stream]``, so a second pass leaves every first pass unchanged.
    """
    objects = []
    for org in organoids:
        poly = org.polygon()
        objects.append(SceneObject(tight_box(poly, size), np.clip(poly, 0, size), org.viability))
    objects = [o for o in objects if (o.tight[2] - o.tight[0]) >= 3 and (o.tight[3] - o.tight[1]) >= 3]
    debris_objects = [
        SceneObject(tight_box(p, size), np.clip(p, 0, size), None)
        for p in (circle_polygon(d.cx, d.cy, d.r * 1.3) for d in debris if d.r >= 3.5)
    ]
    debris_objects = [o for o in debris_objects if (o.tight[2] - o.tight[0]) >= 3 and (o.tight[3] - o.tight[1]) >= 3]

    det_rng = np.random.default_rng([seed, index, 1, *stream])
    proposals: dict[int, np.ndarray] = {}
    for i, obj in enumerate(objects):
        hit = det_rng.random() < detector.base_recall + detector.viability_recall * obj.viability
        box = draw_box(det_rng, obj.tight, detector.jitter, detector.tightness, size)
        if hit and box is not None:
            proposals[i] = box

    first, second = {}, {}
    for k, (name, style) in enumerate(styles.items()):
        rng = np.random.default_rng([seed, index, 2 + k, *stream])
        first[name] = annotate(rng, objects, proposals, debris_objects, style, size)
        if second_pass:
            rng = np.random.default_rng([seed, index, 2 + k, SECOND_PASS, *stream])
            second[name] = annotate(rng, objects, proposals, debris_objects, style, size)
    return first, second, objects


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def coco_of_annotations(images: list[dict], anns: list[tuple[int, np.ndarray, np.ndarray, str]]) -> dict:
    """COCO dict of (image id, xyxy box, polygon, provenance) annotations, rounded to 0.01 px."""
    annotations = []
    for k, (image_id, box, poly, source) in enumerate(anns, start=1):
        x0, y0, x1, y1 = (round(float(v), 2) for v in box)
        annotations.append({
            "id": k,
            "image_id": image_id,
            "category_id": 1,
            "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
            "area": round(_polygon_area(poly), 2),
            "iscrowd": 0,
            "segmentation": [[round(float(v), 2) for v in poly.ravel()]],
            "attributes": {"source": source},
        })
    return coco_dict(images, annotations)


def generate(
    out: str | Path,
    seed: int = 0,
    images: int = 80,
    consensus_images: int = 20,
    raters: int = 2,
    size: int = 256,
    preset: str = DEFAULT_PRESET,
    rater_overrides: Sequence[Mapping[str, Any] | None] | None = None,
    repeat_images: int = 0,
) -> Path:
    """Write a synthetic multi-rater dataset into ``out``; return the manifest path.

    Multi-rater images get ids 1..images, consensus images the ids after them. ``preset`` names the
    rater model and ``rater_overrides`` (one partial style per rater) adjust it (``presets``). With
    ``repeat_images`` K, every rater annotates the first K multi-rater images a second time
    (``<rater>_pass2.json``, the manifest's ``repeats``); the rater files hold the first pass.
    A dataset written into ``out`` before is replaced; any other content of ``out`` is an error.
    """
    check_settings(images, consensus_images, raters, size, repeat_images)
    names = rater_names(raters)
    styles = dict(zip(names, rater_styles(raters, preset, rater_overrides)))

    def build(image_dir: Path) -> DatasetContent:
        from PIL import Image

        image_dir.mkdir()
        rater_images, consensus_imgs = [], []
        rater_anns: dict[str, list] = {n: [] for n in names}
        repeat_anns: dict[str, list] = {n: [] for n in names}
        consensus_anns: list = []
        for index in range(images + consensus_images):
            image_id = index + 1
            is_consensus = index >= images
            sample = synthesize_image(seed, index, size, {"consensus": CONSENSUS_STYLE} if is_consensus else styles,
                                      second_pass=index < repeat_images)
            file_name = f"img_{image_id:04d}.png"
            pixels = np.round(sample.image * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(image_dir / file_name)
            record = {"id": image_id, "file_name": file_name, "width": size, "height": size}
            if is_consensus:
                consensus_imgs.append(record)
                consensus_anns += [(image_id, *a) for a in sample.annotations["consensus"]]
            else:
                rater_images.append(record)
                for name in names:
                    rater_anns[name] += [(image_id, *a) for a in sample.annotations[name]]
                    repeat_anns[name] += [(image_id, *a) for a in sample.second_pass.get(name, [])]
        return DatasetContent(
            name=f"synthetic-organoids-seed{seed}",
            raters={name: coco_of_annotations(rater_images, rater_anns[name]) for name in names},
            consensus=coco_of_annotations(consensus_imgs, consensus_anns) if consensus_images else None,
            repeats={name: coco_of_annotations(rater_images[:repeat_images], repeat_anns[name]) for name in names}
            if repeat_images else None,
        )

    return write_dataset_folder(out, build, replace_dataset=True)


def check_settings(images: int, consensus_images: int, raters: int, size: int, repeat_images: int = 0) -> None:
    """Reject settings that cannot make a usable dataset; the error names the setting."""
    if images < 2:
        raise UserError(f"need at least 2 multi-rater images (train and validation), got {images}", None, "images")
    if consensus_images < 0:
        raise UserError(f"must be 0 or more, got {consensus_images}", None, "consensus_images")
    if raters < 1:
        raise UserError(f"need at least 1 rater, got {raters}", None, "raters")
    if size < MIN_SIZE_PX:
        raise UserError(f"images must be at least {MIN_SIZE_PX} px, got {size}", None, "size")
    if not 0 <= repeat_images <= images:
        raise UserError(f"must be between 0 and the {images} multi-rater images, got {repeat_images}", None,
                        "repeat_images")
