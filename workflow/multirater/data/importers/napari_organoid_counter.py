"""napari-organoid-counter JSON: {id: {box_id, x1, x2, y1, y2, confidence, scale_x, scale_y, label}}.

The plugin writes napari shape coordinates, whose first axis is the image row: by default (``rc``)
x1/x2 are rows and y1/y2 columns. ``xy`` reads x as the column. Values may be numbers or numeric
strings (the plugin writes strings). Coordinates are in pixels; scale_x/scale_y only set napari's
display scale and are ignored. ``label`` (an integer class, -1 = unassigned) is kept as the category.

One folder per rater, ``LABELS/<rater>/`` (and, for each rater's labels of the test images,
``TEST_LABELS/<rater>/``), holding what the plugin saved, nested folders included (e.g. a
copy of the image tree with the label files beside the images): ``<image>.json`` or v0.2.0's
``Labels-<image>.json``. The files the plugin writes beside them without boxes are skipped:
``<image>.meta.json`` (settings), ``<image>.json.draft`` and ``<image>.csv`` (diameters); so are images.
A label file belongs to the image at the same relative path, or else to the one image of its name.

``write_detections`` writes detections the way the plugin saves boxes (``multirater export``), one
``<image stem>.json`` per image at the image's relative path, so that ``read_boxes`` reads back the same boxes.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_json, write_json
from multirater.data.images import IMAGE_SUFFIXES
from multirater.data.importers.common import (
    Annotations,
    Box,
    files_below,
    number,
    ordered_box,
    relative_key,
    safe_rater_name,
)

if TYPE_CHECKING:
    from multirater.io.detections import Detections

AXES = ("rc", "xy")
LABELS_PREFIX = "Labels-"  # v0.2.0's save dialog proposed Labels-<image>.json
SIDE_FILE_SUFFIX = ".meta.json"  # the plugin's settings beside each image: no boxes


def read_boxes(path: Path, errors: ErrorCollector, axes: str = "rc") -> list[Box]:
    """The boxes of one plugin file, read with ``axes`` (rc or xy); bad entries are recorded in ``errors``."""
    data = read_json(path)
    if not isinstance(data, dict):
        errors.add(f"expected an object mapping box ids to boxes, got {type(data).__name__}", path)
        return []
    boxes = []
    for key, entry in data.items():
        item = f"box {key}"
        if not isinstance(entry, dict):
            errors.add(f"expected an object with x1, y1, x2, y2, got {entry!r:.80}", path, item)
            continue
        missing = [k for k in ("x1", "y1", "x2", "y2") if k not in entry]
        if missing:
            errors.add(f"missing {', '.join(missing)}", path, item)
            continue
        v = [number(entry[k], path, item, k, errors) for k in ("x1", "y1", "x2", "y2")]
        label_ok, label = _label(entry.get("label"), path, item, errors)
        if any(x is None for x in v) or not label_ok:
            continue
        x1, y1, x2, y2 = v
        if axes == "rc":  # x is the row axis
            boxes.append(ordered_box(y1, x1, y2, x2, path, item, label))
        else:
            boxes.append(ordered_box(x1, y1, x2, y2, path, item, label))
    return boxes


def _label(value: object, path: Path, item: str, errors: ErrorCollector) -> tuple[bool, int | None]:
    """(True, the integer class of an entry or None without one), or (False, None) when it is not an integer
    (recorded in ``errors``)."""
    if value is None:
        return True, None
    number_value = number(value, path, item, "label", errors)
    if number_value is None:
        return False, None
    if not number_value.is_integer():
        errors.add(f"label must be an integer class, got {value!r}", path, item)
        return False, None
    return True, int(number_value)


def label_files(folder: Path, setting: str) -> tuple[list[Path], int]:
    """The plugin's label files below ``folder`` and how many other files were skipped."""
    if not folder.is_dir():
        raise UserError("annotation folder not found", folder, setting)
    every = files_below(folder)
    labels = [p for p in every if p.suffix.lower() == ".json" and not p.name.lower().endswith(SIDE_FILE_SUFFIX)]
    return labels, len(every) - len(labels)


def annotation_key(path: Path, folder: Path) -> str:
    """The image a label file names: its relative path without ``.json`` (nor an image suffix before it) and
    without the ``Labels-`` prefix."""
    key = relative_key(path, folder)
    head, _, name = key.rpartition("/")
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:  # <image>.tif.json
        name = Path(name).stem
    name = name.removeprefix(LABELS_PREFIX)
    return f"{head}/{name}" if head else name


def collect(
    labels: Path, errors: ErrorCollector, consensus: bool = False, axes: str = "rc", setting: str = "labels"
) -> Annotations | dict[str, list[Box]]:
    """Raters (one subfolder each) or, for the consensus folder, one set of boxes per file. ``setting``: the
    import setting that named the folder (labels, or test_labels for each rater's test images)."""
    return collect_with_skipped(labels, errors, consensus, axes, setting)[0]


def collect_with_skipped(
    labels: Path, errors: ErrorCollector, consensus: bool = False, axes: str = "rc", setting: str = "labels"
) -> tuple[Annotations | dict[str, list[Box]], int]:
    """``collect``, and how many files were skipped (the plugin's side files, images, anything else)."""
    if axes not in AXES:
        raise UserError(f"must be one of {', '.join(AXES)}, got {axes!r}", None, "axes")
    if consensus:
        files, skipped = label_files(labels, "consensus_labels")
        return _by_key(files, labels, errors, axes), skipped
    if not labels.is_dir():
        raise UserError("annotation folder not found", labels, setting)
    raters: Annotations = {}
    skipped = 0
    for folder in sorted(p for p in labels.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files, rater_skipped = label_files(folder, setting)
        skipped += rater_skipped
        if files:
            raters[safe_rater_name(folder.name)] = _by_key(files, folder, errors, axes)
    return raters, skipped


def _by_key(files: list[Path], folder: Path, errors: ErrorCollector, axes: str) -> dict[str, list[Box]]:
    """The boxes of each label file by the image it names; a second file for the same image is reported."""
    per_key: dict[str, list[Box]] = {}
    first: dict[str, Path] = {}
    for path in files:
        key = annotation_key(path, folder)
        if key in per_key:
            errors.add(f"a second label file for image {key!r} (the first: {first[key].name})", path)
            continue
        first[key] = path
        per_key[key] = read_boxes(path, errors, axes)
    return per_key


def plugin_entries(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, dict]:
    """The plugin's JSON of one image from COCO boxes [x, y, w, h] (x the column): x1/x2 are rows, y1/y2
    columns, numbers as strings as the plugin writes them, ``label`` the integer class, scale 1 (pixels)."""
    entries = {}
    for k, ((x, y, w, h), score, label) in enumerate(zip(boxes, scores, labels)):
        entries[str(k)] = {"box_id": str(k), "x1": str(float(y)), "x2": str(float(y + h)), "y1": str(float(x)),
                           "y2": str(float(x + w)), "confidence": str(float(score)), "scale_x": "1.0",
                           "scale_y": "1.0", "label": int(label)}
    return entries


def label_file_name(image_name: str) -> str:
    """Where the label file of an image goes, relative to the export folder: the image's path, ``.json`` for
    its suffix."""
    return PurePosixPath(image_name).with_suffix(".json").as_posix()


def write_detections(detections: Detections, image_names: dict[int, str], target: Path) -> str:
    """One plugin file per image of ``detections`` (also those without a detection) in the folder ``target``;
    the category id is the plugin's ``label``."""
    files: dict[str, str] = {}
    for image_id in detections.image_ids.tolist():
        name = label_file_name(image_names[image_id])
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise UserError(f"image path {image_names[image_id]!r} leads out of the image folder", None,
                            f"image {image_id}")
        if name in files:
            raise UserError(f"images {files[name]} and {image_names[image_id]} would share the label file {name}: "
                            "rename one of them", None, f"image {image_id}")
        files[name] = image_names[image_id]
    order = detections.image_id.argsort(kind="stable")
    starts = detections.image_id[order].searchsorted(detections.image_ids)
    ends = detections.image_id[order].searchsorted(detections.image_ids, side="right")
    for image_id, start, end in zip(detections.image_ids.tolist(), starts.tolist(), ends.tolist()):
        rows = order[start:end]
        entries = plugin_entries(detections.boxes[rows].tolist(), detections.scores[rows].tolist(),
                                 detections.category_id[rows].tolist())
        write_json(target / label_file_name(image_names[image_id]), entries, indent=None)
    return f"{len(detections)} boxes in {len(files)} label files"
