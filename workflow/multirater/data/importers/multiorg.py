"""MultiOrg (Bukas et al. 2024): JSON label files ``{"0": [[r, c], [r, c], [r, c], [r, c]], ...}``, four corners
of a box as [row, col] each, in any order: the box is the min and max over the four points.

Two layouts:

- as published (``collect_published``): the unpacked download, ``ROOT/{train,test}/.../<folder>/`` holding
  one 16-bit TIFF and its label files ``<tiff stem>_<suffix>.json`` side by side. Folder and file names repeat
  across plates, so images are keyed by their path relative to ROOT. A train suffix names the rater
  (``Annotator_A``: one annotator per train image), a test suffix a test label set (a time point, e.g. ``t0``,
  ``t1_A``, ``t1_B``); suffixes are matched case-insensitively and written in one spelling
  (``annotator_a`` -> ``Annotator_A``, ``T1_a`` -> ``t1_A``).
- flat (``collect``): one folder of ``<image>_Annotator_A.json`` files next to an image folder; every image
  labelled by every annotator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_json
from multirater.data.importers.common import Annotations, Box, annotation_files, number, ordered_box, relative_key

ANNOTATOR = re.compile(r"Annotator_([A-Za-z0-9]+)")
TIFF_SUFFIXES = (".tif", ".tiff")
# the whole suffix of a label file: a rater in train, a test label set in test
RATER_SUFFIX = re.compile(r"^annotator[_\- ]?([a-z0-9]+)$", re.IGNORECASE)
LABEL_SET_SUFFIX = re.compile(r"^t(\d+)(?:[_\- ]?(?:annotator[_\- ]?)?([a-z0-9]+))?$", re.IGNORECASE)
SPLITS = ("train", "test")


def annotator_and_stem(path: Path) -> tuple[str | None, str]:
    """('Annotator_A', image stem) from a file name; the stem is the name without the annotator part."""
    match = ANNOTATOR.search(path.stem)
    if match is None:
        return None, path.stem
    stem = (path.stem[: match.start()] + path.stem[match.end():]).strip("_-. ")
    return match.group(0), stem


def read_boxes(path: Path, errors: ErrorCollector) -> list[Box]:
    """The boxes of one MultiOrg file (min/max over each entry's four [row, col] corners); bad entries are
    recorded in ``errors``."""
    data = read_json(path)
    if not isinstance(data, dict):
        errors.add(f"expected an object mapping ids to corner points, got {type(data).__name__}", path)
        return []
    boxes = []
    for key, points in data.items():
        item = f"entry {key}"
        if not (isinstance(points, list) and len(points) == 4
                and all(isinstance(p, list) and len(p) == 2 for p in points)):
            errors.add(f"expected four [row, col] points, got {points!r:.80}", path, item)
            continue
        values = [number(v, path, item, "coordinate", errors) for p in points for v in p]
        if any(v is None for v in values):
            continue
        rows, cols = values[0::2], values[1::2]
        boxes.append(ordered_box(min(cols), min(rows), max(cols), max(rows), path, item))
    return boxes


def collect(
    labels: Path, errors: ErrorCollector, consensus: bool = False, setting: str = "labels"
) -> Annotations | dict[str, list[Box]]:
    """Flat layout: rater annotations (annotator from each file name), or, for the consensus folder, one set
    per image. ``setting``: the import setting that named the folder (labels or test_labels)."""
    raters: Annotations = {}
    flat: dict[str, list[Box]] = {}
    for path in annotation_files(labels, ".json", "consensus_labels" if consensus else setting):
        annotator, stem = annotator_and_stem(path)
        if consensus:
            if stem in flat:
                errors.add(f"a second consensus file for image {stem!r}", path)
                continue
            flat[stem] = read_boxes(path, errors)
            continue
        if annotator is None:
            errors.add("file name names no annotator (expected ..._Annotator_A.json)", path)
            continue
        raters.setdefault(annotator, {})[stem] = read_boxes(path, errors)
    return flat if consensus else raters


def collect_with_skipped(
    labels: Path, errors: ErrorCollector, consensus: bool = False, axes: str = "rc", setting: str = "labels"
) -> tuple[Annotations | dict[str, list[Box]], int]:
    """``collect`` as every importer reads (``multirater.data.formats.FORMATS``): no file is skipped; ``axes`` is
    the napari-organoid-counter format's own."""
    return collect(labels, errors, consensus, setting), 0


@dataclass(frozen=True)
class Published:
    """What ``collect_published`` read: the TIFFs by key, rater boxes (train) and label-set boxes (test)."""

    images: dict[str, Path]
    raters: Annotations
    label_sets: Annotations


def collect_published(root: Path, errors: ErrorCollector) -> Published:
    """Walk the published layout below ``root`` (holding ``train/`` and ``test/``); problems go to ``errors``."""
    if not root.is_dir():
        raise UserError("folder not found", root, "images")
    split_dirs = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() in SPLITS}
    if not split_dirs:
        raise UserError("expected the unpacked MultiOrg download: a folder holding train/ and test/", root, "images")
    found = Published({}, {}, {})
    for split in SPLITS:
        if split not in split_dirs:
            continue
        below = sorted(p for p in split_dirs[split].rglob("*") if p.is_dir() and not _skipped(p, root))
        for folder in [split_dirs[split], *below]:
            _read_image_folder(folder, root, split, found, errors)
    return found


def _skipped(folder: Path, root: Path) -> bool:
    """Hidden folders and the resource forks a macOS zip adds (``__MACOSX``): no part of the layout."""
    return any(part.startswith(".") or part == "__MACOSX" for part in folder.relative_to(root).parts)


def _read_image_folder(folder: Path, root: Path, split: str, found: Published, errors: ErrorCollector) -> None:
    """The TIFFs of one folder and their label files (``<tiff stem>_<suffix>.json``)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    tiffs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    label_files = [p for p in files if p.suffix.lower() == ".json"]
    is_image_folder = not any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())
    if is_image_folder and not tiffs:  # a folder of the layout's last level: one TIFF and its labels
        held = (f"holds {len(label_files)} label file(s) ({', '.join(p.name for p in label_files[:3])}"
                + (", ..." if len(label_files) > 3 else "") + ")" if label_files else "is empty")
        errors.add(f"image folder {held} but no TIFF image (expected one TIFF and its <tiff stem>_<label set>.json "
                   "files; an incomplete download?)", folder)
        return
    owners = {p: _owner(p, tiffs) for p in label_files}
    for path, tiff in owners.items():
        if tiff is None:
            expected = f"{tiffs[0].stem}_<label set>.json" if tiffs else "a TIFF image beside it"
            errors.add(f"label file belongs to no image of its folder (expected {expected})", path)
    for tiff in tiffs:
        key = relative_key(tiff, root)
        found.images[key] = tiff
        own = [p for p, owner in owners.items() if owner == tiff]
        if not own:
            errors.add(f"image has no label file (expected {tiff.stem}_<label set>.json beside it)", tiff)
        for path in own:
            suffix = path.stem[len(tiff.stem) + 1:]
            source, name = _source_of(suffix, split)
            if name is None:
                errors.add(_unknown_suffix(suffix, split), path)
                continue
            per_image = (found.raters if source == "rater" else found.label_sets).setdefault(name, {})
            if key in per_image:
                errors.add(f"a second label file of {name} for this image", path)
                continue
            per_image[key] = read_boxes(path, errors)


def _owner(label_file: Path, tiffs: list[Path]) -> Path | None:
    """The TIFF a label file belongs to: the longest stem that prefixes the file's stem, followed by '_'."""
    stem = label_file.stem.lower()
    owners = [t for t in tiffs if stem.startswith(t.stem.lower() + "_")]
    return max(owners, key=lambda t: len(t.stem)) if owners else None


def _source_of(suffix: str, split: str) -> tuple[str, str | None]:
    """("rater", name) for a train suffix, ("label set", name) for a test one; name None if not one."""
    if split == "train":
        match = RATER_SUFFIX.match(suffix)
        return "rater", (f"Annotator_{match.group(1).upper()}" if match else None)
    match = LABEL_SET_SUFFIX.match(suffix)
    if match is None:
        return "label set", None
    time_point, expert = match.groups()
    return "label set", f"t{int(time_point)}" + (f"_{expert.upper()}" if expert else "")


def _unknown_suffix(suffix: str, split: str) -> str:
    if split == "train":
        return (f"suffix {suffix!r} names no rater: a train label file is <tiff stem>_Annotator_<X>.json "
                "(one annotator per image)")
    return (f"suffix {suffix!r} names no test label set: a test label file is <tiff stem>_t<N>[_<expert>].json "
            "(e.g. t0, t1_A, t1_B)")
