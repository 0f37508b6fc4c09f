"""What every importer shares: boxes read from the user's files, matched to images, written as a dataset.

An importer turns its files into ``Annotations``: rater -> image stem -> boxes (each remembering the file
and item it came from, so a bad value is reported where the user can fix it). ``write_dataset`` then
checks the boxes against the images and writes one COCO file per rater (and a consensus file) plus
``dataset.yaml``, all or nothing.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multirater.data.dataset import IMAGE_SUFFIXES, OUTSIDE_TOLERANCE_PX, RATER_NAME, image_size, load_dataset
from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import write_json, write_yaml

CATEGORIES = [{"id": 1, "name": "organoid"}]


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    file: Path  # where it was read
    item: str  # which entry of that file


# rater -> annotation-file stem -> boxes
Annotations = dict[str, dict[str, list[Box]]]


def number(value: object, file: Path, item: str, field: str, errors: ErrorCollector) -> float | None:
    """A finite float from a number or numeric string; records an error otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)  # napari-organoid-counter stores numbers as strings
    except (TypeError, ValueError):
        errors.add(f"{field} must be a number, got {value!r}", file, item)
        return None
    if not math.isfinite(out):
        errors.add(f"{field} must be finite, got {value!r}", file, item)
        return None
    return out


def ordered_box(x1: float, y1: float, x2: float, y2: float, file: Path, item: str) -> Box:
    """Corners in either order -> (min, min, max, max)."""
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), file, item)


def find_images(images_dir: Path) -> dict[str, Path]:
    """Image files of a folder by stem (PNG, TIFF, JPEG)."""
    if not images_dir.is_dir():
        raise UserError("image folder not found", images_dir, "--images")
    found: dict[str, Path] = {}
    for path in sorted(images_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise UserError(f"two images share the stem {path.stem!r}: {found[path.stem].name}, {path.name}", images_dir)
            found[path.stem] = path
    if not found:
        raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)})", images_dir, "--images")
    return found


def image_for(stem: str, images: dict[str, Path]) -> str | None:
    """The image an annotation file belongs to: same stem, or the longest image stem that prefixes it
    followed by a separator (``img1_labels.json`` -> ``img1``)."""
    if stem in images:
        return stem
    best = None
    for image_stem in images:
        if stem.startswith(image_stem) and stem[len(image_stem)] in "_-. " and (best is None or len(image_stem) > len(best)):
            best = image_stem
    return best


def write_dataset(
    out: Path,
    images_dir: Path,
    raters: Annotations,
    consensus: dict[str, list[Box]] | None,
    name: str,
) -> Path:
    """Check the imported boxes against the images and write the dataset; return its manifest."""
    errors = ErrorCollector()
    images = find_images(images_dir)
    for rater in raters:
        if not RATER_NAME.match(rater):
            errors.add(f"rater name {rater!r} must match {RATER_NAME.pattern} (no '-' or ':')", None, f"rater {rater}")
    if not raters:
        errors.add("no annotation files found", None, "--labels")
    errors.raise_if_any()

    def resolve(per_file: dict[str, list[Box]], who: str) -> dict[str, list[Box]]:
        per_image: dict[str, list[Box]] = {}
        for stem, boxes in per_file.items():
            image = image_for(stem, images)
            if image is None:
                where = boxes[0].file if boxes else stem
                errors.add(f"no image in {images_dir} matches annotation file stem {stem!r}", where, who)
                continue
            if image in per_image:
                errors.add(f"image {images[image].name} has two annotation files from {who}", images[image], who)
                continue
            per_image[image] = boxes
        return per_image

    rater_boxes = {r: resolve(files, r) for r, files in raters.items()}
    consensus_boxes = resolve(consensus, "consensus") if consensus is not None else {}
    rater_stems = sorted(set().union(*[set(b) for b in rater_boxes.values()]))
    for rater, per_image in rater_boxes.items():
        for stem in rater_stems:
            if stem not in per_image:
                errors.add(f"no annotation file from rater {rater}", images[stem], f"image {images[stem].name}")
    for stem in sorted(set(consensus_boxes) & set(rater_stems)):
        errors.add("image has both rater and consensus annotations", images[stem], f"image {images[stem].name}")
    errors.raise_if_any()

    records = {}
    for image_id, stem in enumerate(rater_stems + sorted(consensus_boxes), start=1):
        path = images[stem]
        try:
            width, height = image_size(path)
        except Exception as exc:
            errors.add(f"cannot read image ({exc})", path)
            continue
        records[stem] = {"id": image_id, "file_name": path.name, "width": width, "height": height}
    errors.raise_if_any()

    def coco(per_image: dict[str, list[Box]], stems: list[str]) -> dict:
        anns = []
        for stem in stems:
            rec = records[stem]
            for box in per_image[stem]:
                w, h = box.x2 - box.x1, box.y2 - box.y1
                if w <= 0 or h <= 0:
                    errors.add(f"box has zero width or height: ({box.x1}, {box.y1}, {box.x2}, {box.y2})", box.file, box.item)
                    continue
                tol = OUTSIDE_TOLERANCE_PX
                if box.x1 < -tol or box.y1 < -tol or box.x2 > rec["width"] + tol or box.y2 > rec["height"] + tol:
                    errors.add(
                        f"box ({box.x1}, {box.y1}, {box.x2}, {box.y2}) lies outside image {rec['file_name']} "
                        f"({rec['width']}x{rec['height']} px) by more than {tol:g} px",
                        box.file,
                        box.item,
                    )
                    continue
                anns.append({"id": len(anns) + 1, "image_id": rec["id"], "category_id": 1,
                             "bbox": [box.x1, box.y1, w, h], "area": w * h, "iscrowd": 0})
        return {"images": [records[s] for s in stems], "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}

    cocos = {r: coco(rater_boxes[r], rater_stems) for r in raters}
    consensus_coco = coco(consensus_boxes, sorted(consensus_boxes)) if consensus_boxes else None
    errors.raise_if_any()

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and any(out.iterdir()):
        raise UserError("output folder exists and is not empty", out, "--out")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rater, data in cocos.items():
            write_json(tmp / f"{rater}.json", data, indent=None)
        manifest = {"name": name, "images": os.path.relpath(images_dir.resolve(), out.resolve()),
                    "raters": {r: f"{r}.json" for r in cocos}}
        if consensus_coco is not None:
            write_json(tmp / "consensus.json", consensus_coco, indent=None)
            manifest["consensus"] = "consensus.json"
        write_yaml(tmp / "dataset.yaml", manifest)
        # Same relative image path from the temporary folder (a sibling of out) as from out itself.
        load_dataset(tmp / "dataset.yaml")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / "dataset.yaml"


def json_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise UserError("annotation folder not found", folder, what)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json")


def safe_rater_name(text: str) -> str:
    """A rater name usable in paths and strategy tokens: other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", text.strip())
    return name if name and name[0].isalnum() else f"r{name}"
