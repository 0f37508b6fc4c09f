"""From imported boxes to a dataset: annotation keys matched to images, boxes checked against the images'
sizes, one COCO file per rater and per test label set written with the dataset writer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError
from multirater.data.consensus import MAJORITY, majority_consensus
from multirater.data.images import IMAGE_SUFFIXES, image_size
from multirater.data.importers.common import Annotations, Box, files_below, relative_key
from multirater.data.manifest import CONSENSUS, RATER_NAME
from multirater.data.writer import CATEGORIES, DatasetContent, coco_dict, write_dataset_folder
from multirater.io.coco import OUTSIDE_TOLERANCE_PX, lies_outside


@dataclass(frozen=True)
class Imported:
    """A written dataset and what the import found (one line each, for the user)."""

    manifest: Path
    found: list[str]


def write_imported_dataset(
    out: Path,
    images_dir: Path,
    raters: Annotations,
    label_sets: Annotations,
    name: str,
    coverage: str = "complete",
    images: dict[str, Path] | None = None,
    majority: bool = False,
) -> Imported:
    """Check the imported boxes against the images and write the dataset into ``out``.

    ``label_sets``: the test label sets (``"consensus"`` among them, if any). ``coverage="complete"``:
    every rater must have labelled every rater image; ``"partial"``: each rater's own images.
    ``images``: key -> image file, when the importer found them itself (default: every image below
    ``images_dir``). ``majority``: add the majority consensus of the label sets as the label set
    ``"majority"``. The manifest points at ``images_dir`` (the images are not copied). Every problem is
    reported at once.
    """
    errors = ErrorCollector()
    images = find_images(images_dir) if images is None else images
    for who in [*raters, *label_sets]:
        if not RATER_NAME.match(who):
            errors.add(f"name {who!r} must match {RATER_NAME.pattern} (no '-' or ':')", None, who)
    if not raters:
        errors.add("no annotation files found", None, "labels")
    errors.raise_if_any()

    rater_boxes = {r: _by_image(files, images, images_dir, r, errors) for r, files in raters.items()}
    set_boxes = {s: _by_image(files, images, images_dir, s, errors) for s, files in label_sets.items()}
    rater_keys = sorted(set().union(*[set(b) for b in rater_boxes.values()]))
    if coverage == "complete":
        for rater, per_image in rater_boxes.items():
            for key in rater_keys:
                if key not in per_image:
                    errors.add(f"no annotation file from rater {rater}", images[key], f"image {images[key].name}")
    for label_set, per_image in set_boxes.items():
        for key in sorted(set(per_image) & set(rater_keys)):
            errors.add(f"image has both rater and {label_set} annotations", images[key], f"image {images[key].name}")
    errors.raise_if_any()

    test_keys = sorted(set().union(*[set(b) for b in set_boxes.values()]))
    records = _image_records(images, images_dir, rater_keys + test_keys, errors)
    errors.raise_if_any()
    categories, category_of = _categories([*rater_boxes.values(), *set_boxes.values()])
    cocos = {r: _coco(boxes, sorted(boxes) if coverage == "partial" else rater_keys, records, categories,
                      category_of, errors) for r, boxes in rater_boxes.items()}
    set_cocos = {s: _coco(boxes, sorted(boxes), records, categories, category_of, errors)
                 for s, boxes in set_boxes.items()}
    errors.raise_if_any()
    if majority:
        voters = {s: c for s, c in set_cocos.items() if s != CONSENSUS}
        set_cocos[MAJORITY] = majority_consensus(voters)
    consensus = set_cocos.pop(CONSENSUS, None)
    content = DatasetContent(name=name, raters=cocos, consensus=consensus, image_dir=images_dir,
                             label_sets=set_cocos, rater_coverage=coverage)
    manifest = write_dataset_folder(out, lambda _image_dir: content)
    label_set_cocos = ({CONSENSUS: consensus} if consensus is not None else {}) | set_cocos
    return Imported(manifest, describe(cocos, label_set_cocos, categories))


def describe(raters: dict[str, dict], label_sets: dict[str, dict], categories: list[dict]) -> list[str]:
    """What an import found: rater (train) images by rater, test images by label set, the categories."""
    def ids(coco: dict) -> set[int]:
        return {im["id"] for im in coco["images"]}

    rater_ids = [ids(c) for c in raters.values()]
    shared = sum(1 for i in set().union(*rater_ids) if sum(i in s for s in rater_ids) > 1)
    lines = [f"train: {len(set().union(*rater_ids))} images; raters: "
             + ", ".join(f"{r} {len(s)}" for r, s in zip(raters, rater_ids))
             + f" ({shared} labelled by two or more raters)"]
    if label_sets:
        test_ids = set().union(*[ids(c) for c in label_sets.values()])
        lines.append(f"test: {len(test_ids)} images; label sets: "
                     + ", ".join(f"{s} {len(ids(c))}" for s, c in label_sets.items()))
    if categories != CATEGORIES:
        lines.append("categories: " + ", ".join(f"{c['name']} (id {c['id']})" for c in categories))
    return lines


def find_images(images_dir: Path) -> dict[str, Path]:
    """Image files (PNG, TIFF, JPEG) below a folder, nested folders included, by key (relative path without
    suffix: ``plate1/img1``)."""
    if not images_dir.is_dir():
        raise UserError("image folder not found", images_dir, "images")
    found: dict[str, Path] = {}
    for path in files_below(images_dir):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            key = relative_key(path, images_dir)
            if key in found:
                raise UserError(f"two images share the stem {path.stem!r}: {found[key].name}, {path.name}",
                                path.parent)
            found[key] = path
    if not found:
        raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)})", images_dir, "images")
    return found


def image_for(key: str, images: dict[str, Path]) -> tuple[str | None, str | None]:
    """(image key, None) of the image an annotation key belongs to, or (None, why not).

    The image with the same key, or the longest image key that prefixes it followed by a separator
    (``img1_labels`` -> ``img1``); failing that, the same by the file's name alone among the image stems
    (label files kept apart from nested images), which must then be unambiguous.
    """
    found = _longest_prefix(key, images)
    if found is not None:
        return found, None
    name = key.rsplit("/", 1)[-1]
    by_stem: dict[str, list[str]] = {}
    for image_key in images:
        by_stem.setdefault(image_key.rsplit("/", 1)[-1], []).append(image_key)
    stem = _longest_prefix(name, by_stem)
    if stem is None:
        return None, None
    if len(by_stem[stem]) > 1:
        several = ", ".join(by_stem[stem])
        return None, f"several images are named {stem!r} ({several}): keep the label files in the images' folders"
    return by_stem[stem][0], None


def _longest_prefix(key: str, candidates: Iterable[str]) -> str | None:
    """``key`` itself if it is a candidate, else the longest candidate followed in ``key`` by a separator."""
    candidates = set(candidates)
    if key in candidates:
        return key
    best = None
    for candidate in candidates:
        followed_by_separator = (key.startswith(candidate) and len(key) > len(candidate)
                                 and key[len(candidate)] in "_-. ")
        if followed_by_separator and (best is None or len(candidate) > len(best)):
            best = candidate
    return best


def _by_image(
    per_file: dict[str, list[Box]], images: dict[str, Path], images_dir: Path, who: str, errors: ErrorCollector
) -> dict[str, list[Box]]:
    """One source's boxes keyed by image key instead of annotation key."""
    per_image: dict[str, list[Box]] = {}
    for key, boxes in per_file.items():
        image, problem = image_for(key, images)
        if image is None:
            where = boxes[0].file if boxes else key
            errors.add(problem or f"no image in {images_dir} matches annotation file {key!r}", where, who)
            continue
        if image in per_image:
            errors.add(f"image {images[image].name} has two annotation files from {who}", images[image], who)
            continue
        per_image[image] = boxes
    return per_image


def _image_records(
    images: dict[str, Path], images_dir: Path, keys: list[str], errors: ErrorCollector
) -> dict[str, dict]:
    """COCO image records, ids 1.. in the order of ``keys``, sizes read from the files' headers; file names
    relative to the image folder."""
    records = {}
    for image_id, key in enumerate(keys, start=1):
        path = images[key]
        try:
            width, height = image_size(path)
        except Exception as exc:  # any decoder failure is the file's problem
            errors.add(f"cannot read image ({exc})", path)
            continue
        file_name = path.relative_to(images_dir).as_posix()
        records[key] = {"id": image_id, "file_name": file_name, "width": width, "height": height}
    return records


def _categories(sources: list[dict[str, list[Box]]]) -> tuple[list[dict], dict[int | None, int]]:
    """The COCO categories and the category id of each class label found: one ``organoid`` category when the
    files carry no labels or a single one; otherwise one category per label, ids 1.. in label order."""
    labels = sorted({box.label for per_image in sources for boxes in per_image.values() for box in boxes
                     if box.label is not None})
    if len(labels) <= 1:
        return [dict(c) for c in CATEGORIES], {label: CATEGORIES[0]["id"] for label in [None, *labels]}
    categories = [{"id": k, "name": f"label {label}"} for k, label in enumerate(labels, start=1)]
    return categories, {label: k for k, label in enumerate(labels, start=1)}


def _coco(
    per_image: dict[str, list[Box]],
    keys: list[str],
    records: dict[str, dict],
    categories: list[dict],
    category_of: dict[int | None, int],
    errors: ErrorCollector,
) -> dict:
    """The COCO dict of one source on the images ``keys``; boxes that are empty or outside their image
    are reported, not kept."""
    anns = []
    for key in keys:
        rec = records[key]
        for box in per_image[key]:
            corners = f"({box.x1}, {box.y1}, {box.x2}, {box.y2})"
            w, h = box.x2 - box.x1, box.y2 - box.y1
            if w <= 0 or h <= 0:
                errors.add(f"box has zero width or height: {corners}", box.file, box.item)
                continue
            if lies_outside(box.x1, box.y1, box.x2, box.y2, rec["width"], rec["height"]):
                errors.add(
                    f"box {corners} lies outside image {rec['file_name']} "
                    f"({rec['width']}x{rec['height']} px) by more than {OUTSIDE_TOLERANCE_PX:g} px",
                    box.file,
                    box.item,
                )
                continue
            if box.label not in category_of:  # only a box without label, among labelled ones
                classes = ", ".join(str(label) for label in category_of if label is not None)
                errors.add(f"has no label, while the other boxes carry the labels {classes}", box.file, box.item)
                continue
            anns.append({"id": len(anns) + 1, "image_id": rec["id"], "category_id": category_of[box.label],
                         "bbox": [box.x1, box.y1, w, h], "area": w * h, "iscrowd": 0})
    return coco_dict([records[k] for k in keys], anns, categories)
