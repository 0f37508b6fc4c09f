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
from multirater.data.manifest import COVERAGES
from multirater.data.synthetic.presets import DEFAULT_PRESET, rater_names, rater_styles, rater_test_label_set
from multirater.data.synthetic.raters import (
    CONSENSUS_STYLE,
    DetectorStyle,
    RaterStyle,
    SceneLabels,
    SceneObject,
    annotate_objects,
    circle_polygon,
    draw_box,
    tight_box,
)
from multirater.data.synthetic.scene import Debris, Organoid, render, sample_debris, sample_organoids
from multirater.data.synthetic.test_objects import TestObjects
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
    scene: SceneLabels | None = None  # every object of the scene and who labelled which


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
    first, second, scene = label_scene(seed, index, size, organoids, debris, styles, detector, second_pass, stream)
    organoid_list = [(o.polygon, float(o.viability)) for o in scene.objects if o.viability is not None]
    return SyntheticImage(image, first, organoid_list, second, scene)


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
    ``[seed, index, 2 + k, SECOND_PASS, *stream]``, so a second pass leaves every first pass unchanged,
    and adding a style after the others leaves theirs unchanged.
    """
    first, second, scene = label_scene(seed, index, size, organoids, debris, styles, detector, second_pass, stream)
    return first, second, [o for o in scene.objects if o.viability is not None]


def label_scene(
    seed: int,
    index: int,
    size: int,
    organoids: list[Organoid],
    debris: list[Debris],
    styles: dict[str, RaterStyle],
    detector: DetectorStyle = DetectorStyle(),
    second_pass: bool = False,
    stream: tuple[int, ...] = (),
) -> tuple[dict[str, list], dict[str, list], SceneLabels]:
    """:func:`annotate_scene` with the scene's objects and who labelled which (:class:`SceneLabels`)."""
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

    first, second, labelled = {}, {}, {}
    for k, (name, style) in enumerate(styles.items()):
        rng = np.random.default_rng([seed, index, 2 + k, *stream])
        labels = annotate_objects(rng, objects, proposals, debris_objects, style, size)
        first[name] = [(label.box, label.polygon, label.source) for label in labels]
        labelled[name] = [label.object for label in labels]
        if second_pass:
            rng = np.random.default_rng([seed, index, 2 + k, SECOND_PASS, *stream])
            second[name] = [(label.box, label.polygon, label.source)
                            for label in annotate_objects(rng, objects, proposals, debris_objects, style, size)]
    return first, second, SceneLabels(objects + debris_objects, set(proposals), labelled)


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
    bias: float | None = None,
    rater_coverage: str = "complete",
    rater_test_labels: bool = False,
) -> Path:
    """Write a synthetic multi-rater dataset into ``out``; return the manifest path.

    Multi-rater images get ids 1..images, consensus images the ids after them. ``preset`` names the
    rater model, ``bias`` the ``graded`` preset's setting, and ``rater_overrides`` (one partial style per
    rater) adjust it (``presets``). With ``repeat_images`` K, every rater annotates the first K multi-rater
    images (of theirs) a second time (``<rater>_pass2.json``, the manifest's ``repeats``); the rater files
    hold the first pass. ``rater_coverage="partial"``: each multi-rater image is labelled by one rater
    (image k by rater k mod raters), as in MultiOrg; the labels are those the rater gives with full coverage.

    Every rater also labels the consensus images (their own random streams, after the consensus's, so the
    consensus labels stay the same): ``test_objects.csv`` records every object of those images and who
    labelled it (``test_objects``), and with ``rater_test_labels`` each rater's labels are a test label set
    of their own (``<rater>_test.json``). A dataset written into ``out`` before is replaced; any other
    content of ``out`` is an error.
    """
    check_settings(images, consensus_images, raters, size, repeat_images, rater_coverage)
    names = rater_names(raters)
    styles = dict(zip(names, rater_styles(raters, preset, rater_overrides, bias)))
    owner = {index: [names[index % raters]] if rater_coverage == "partial" else names for index in range(images)}

    def build(image_dir: Path) -> DatasetContent:
        from PIL import Image

        image_dir.mkdir()
        rater_images: dict[str, list] = {n: [] for n in names}
        repeat_images_of: dict[str, list] = {n: [] for n in names}
        rater_anns: dict[str, list] = {n: [] for n in names}
        repeat_anns: dict[str, list] = {n: [] for n in names}
        consensus_imgs: list = []
        test_anns: dict[str, list] = {n: [] for n in ["consensus", *names]}
        facts = TestObjects(names)
        for index in range(images + consensus_images):
            image_id = index + 1
            is_consensus = index >= images
            # the consensus first: its random stream is the same as without the raters
            sample = synthesize_image(seed, index, size, {"consensus": CONSENSUS_STYLE, **styles} if is_consensus
                                      else styles, second_pass=index < repeat_images)
            file_name = f"img_{image_id:04d}.png"
            pixels = np.round(sample.image * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(image_dir / file_name)
            record = {"id": image_id, "file_name": file_name, "width": size, "height": size}
            if is_consensus:
                consensus_imgs.append(record)
                for source in test_anns:
                    test_anns[source] += [(image_id, *a) for a in sample.annotations[source]]
                facts.add_image(image_id, size, sample.scene)
                continue
            for name in owner[index]:
                rater_images[name].append(record)
                rater_anns[name] += [(image_id, *a) for a in sample.annotations[name]]
                if index < repeat_images:
                    repeat_images_of[name].append(record)
                    repeat_anns[name] += [(image_id, *a) for a in sample.second_pass[name]]
        return DatasetContent(
            name=f"synthetic-organoids-seed{seed}",
            raters={name: coco_of_annotations(rater_images[name], rater_anns[name]) for name in names},
            consensus=coco_of_annotations(consensus_imgs, test_anns["consensus"]) if consensus_images else None,
            repeats={name: coco_of_annotations(repeat_images_of[name], repeat_anns[name]) for name in names
                     if repeat_images_of[name]} if repeat_images else None,
            label_sets={rater_test_label_set(name): coco_of_annotations(consensus_imgs, test_anns[name])
                        for name in names} if rater_test_labels and consensus_images else None,
            rater_coverage=rater_coverage,
            test_objects=facts.csv_text() if consensus_images else None,
        )

    return write_dataset_folder(out, build, replace_dataset=True)


def check_settings(images: int, consensus_images: int, raters: int, size: int, repeat_images: int = 0,
                   rater_coverage: str = "complete") -> None:
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
    if rater_coverage not in COVERAGES:
        raise UserError(f"must be one of {', '.join(COVERAGES)}, got {rater_coverage!r}", None, "rater_coverage")
    if rater_coverage == "partial" and images < 2 * raters:
        raise UserError(f"partial coverage gives each rater every {raters}th image and every rater needs 2 "
                        f"(train and validation): at least {2 * raters} multi-rater images, got {images}", None,
                        "images")
