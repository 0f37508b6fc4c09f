"""napari-organoid-counter JSON: {id: {x1, y1, x2, y2, box_id, confidence, scale_x, scale_y, label}}.

The plugin writes napari shape coordinates, whose first axis is the image row: by default (``rc``)
x1/x2 are rows and y1/y2 columns. ``xy`` reads x as the column. Values may be numbers or numeric
strings (the plugin writes strings). Coordinates are in pixels; scale_x/scale_y only set napari's
display scale and are ignored. One folder per rater: ``LABELS/<rater>/<image stem>[_...].json``.
"""

from __future__ import annotations

from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_json
from multirater.data.importers.common import Annotations, Box, json_files, number, ordered_box, safe_rater_name

AXES = ("rc", "xy")


def read_boxes(path: Path, errors: ErrorCollector, axes: str = "rc") -> list[Box]:
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
        if any(x is None for x in v):
            continue
        x1, y1, x2, y2 = v
        if axes == "rc":  # x is the row axis
            boxes.append(ordered_box(y1, x1, y2, x2, path, item))
        else:
            boxes.append(ordered_box(x1, y1, x2, y2, path, item))
    return boxes


def collect(labels: Path, errors: ErrorCollector, consensus: bool = False, axes: str = "rc"):
    if axes not in AXES:
        raise UserError(f"must be one of {', '.join(AXES)}, got {axes!r}", None, "--axes")
    if consensus:
        return {p.stem: read_boxes(p, errors, axes) for p in json_files(labels, "--consensus-labels")}
    if not labels.is_dir():
        raise UserError("annotation folder not found", labels, "--labels")
    raters: Annotations = {}
    for folder in sorted(p for p in labels.iterdir() if p.is_dir()):
        files = json_files(folder, "--labels")
        if files:
            raters[safe_rater_name(folder.name)] = {p.stem: read_boxes(p, errors, axes) for p in files}
    return raters
