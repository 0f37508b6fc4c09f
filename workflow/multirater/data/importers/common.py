"""What every importer's reader shares: boxes that remember where they were read, numbers, file lookup.

An importer turns its files into ``Annotations``: rater (or test label set) -> annotation key -> boxes (each
remembering the file and item it came from, so a bad value is reported where the user can fix it). A key is
the annotation file's path relative to its folder, without its suffix (``plate1/img1_labels``), or, where
the importer knows the image already, that image's key (``images_by_key``); ``importers.assembly`` then
matches keys to images and writes the dataset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError


@dataclass(frozen=True)
class Box:
    """A box by its corners (x1 <= x2, y1 <= y2, in pixels) and where it was read."""

    x1: float
    y1: float
    x2: float
    y2: float
    file: Path  # where it was read
    item: str  # which entry of that file
    label: int | None = None  # the file's own class label (napari-organoid-counter), None: no classes


# rater (or label set) -> annotation key -> boxes
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


def ordered_box(x1: float, y1: float, x2: float, y2: float, file: Path, item: str, label: int | None = None) -> Box:
    """Corners in either order -> (min, min, max, max)."""
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), file, item, label)


def annotation_files(folder: Path, suffix: str, setting: str) -> list[Path]:
    """The files of an annotation folder with ``suffix`` (e.g. ".json"), sorted; ``setting`` names the
    import setting that gave the folder (labels or consensus_labels)."""
    if not folder.is_dir():
        raise UserError("annotation folder not found", folder, setting)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix)


def files_below(folder: Path) -> list[Path]:
    """Every file under ``folder``, nested folders included, sorted; hidden files and folders are skipped."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def relative_key(path: Path, folder: Path) -> str:
    """A file's key: its path relative to ``folder``, '/'-separated, without its suffix."""
    return path.relative_to(folder).with_suffix("").as_posix()


def safe_rater_name(text: str) -> str:
    """A rater name usable in paths and strategy tokens: other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", text.strip())
    return name if name and name[0].isalnum() else f"r{name}"
