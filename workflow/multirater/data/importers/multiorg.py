"""MultiOrg (Bukas et al. 2024): one JSON per image per annotator, the annotator in the file name
(``..._Annotator_A.json``). Each entry maps an id to four corner points given as [row, col]:
x1 = p0[col], y1 = p0[row], x2 = p2[col], y2 = p1[row]."""

from __future__ import annotations

import re
from pathlib import Path

from multirater.core.errors import ErrorCollector
from multirater.core.files import read_json
from multirater.data.importers.common import Annotations, Box, json_files, number, ordered_box

ANNOTATOR = re.compile(r"Annotator_([A-Za-z0-9]+)")


def annotator_and_stem(path: Path) -> tuple[str | None, str]:
    """('Annotator_A', image stem) from a file name; the stem is the name without the annotator part."""
    match = ANNOTATOR.search(path.stem)
    if match is None:
        return None, path.stem
    stem = (path.stem[: match.start()] + path.stem[match.end():]).strip("_-. ")
    return match.group(0), stem


def read_boxes(path: Path, errors: ErrorCollector) -> list[Box]:
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
        r0, c0, r1, c2 = values[0], values[1], values[2], values[5]  # p0 row/col, p1 row, p2 col
        boxes.append(ordered_box(c0, r0, c2, r1, path, item))
    return boxes


def collect(labels: Path, errors: ErrorCollector, consensus: bool = False) -> Annotations | dict[str, list[Box]]:
    """Rater annotations (annotator from each file name), or, for the consensus folder, one set per image."""
    raters: Annotations = {}
    flat: dict[str, list[Box]] = {}
    for path in json_files(labels, "--consensus-labels" if consensus else "--labels"):
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
