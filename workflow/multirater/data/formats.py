"""The one registry of annotation formats: what ``multirater import`` reads and ``multirater export`` writes.

A format both commands know is read and written by one module (its importer module, or ``io.detections`` for
COCO results): ``writer`` names that module's function, imported only when a file is written, so the CLI's
``--help`` stays fast and this module imports nothing but the standard library.

An export writer is called as ``writer(detections, image_names, target)``: ``detections`` a
:class:`multirater.io.detections.Detections`, ``image_names`` image id -> the image's path relative to the
image folder ('/'-separated), ``target`` the folder (``target_kind`` folder) or file (file) to write. It
returns one line saying what it wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class AnnotationFormat:
    name: str
    description: str
    imports: bool  # `multirater import --format NAME` reads it into a dataset
    writer: str | None = None  # "module:function" that `multirater export --format NAME` writes with
    target_kind: str | None = None  # what export's --out is: "folder" or "file"
    # its reader module in multirater.data.importers (``collect_with_skipped(labels, errors, consensus, axes)``
    # reads a folder of label files); ``published``: the module also reads a published download that keeps
    # the labels beside the images (``collect_published``)
    reader_module: str | None = None
    published: bool = False

    def reader(self) -> ModuleType:
        """The importer module that reads this format."""
        if self.reader_module is None:
            raise ValueError(f"{self.name} is not an import format")
        return importlib.import_module(f"multirater.data.importers.{self.reader_module}")

    def export_writer(self) -> Callable[..., str]:
        """The function that writes detections in this format."""
        if self.writer is None:
            raise ValueError(f"{self.name} is not an export format")
        module, _, function = self.writer.partition(":")
        writer: Any = getattr(importlib.import_module(module), function)
        return writer


FORMATS: dict[str, AnnotationFormat] = {f.name: f for f in (
    AnnotationFormat("multiorg", "MultiOrg: {id: four [row, col] corners} per image and label set", imports=True,
                     reader_module="multiorg", published=True),
    AnnotationFormat(
        "napari-organoid-counter",
        "napari-organoid-counter: one JSON per image, {id: {box_id, x1, x2, y1, y2, confidence, scale_x, scale_y, "
        "label}} with x the row axis",
        imports=True,
        reader_module="napari_organoid_counter",
        writer="multirater.data.importers.napari_organoid_counter:write_detections",
        target_kind="folder",
    ),
    AnnotationFormat("csv", "the reference code's CSV: one file per image, x1, y1, x2, y2, annotator", imports=True,
                     reader_module="csv_files"),
    AnnotationFormat(
        "coco",
        "a COCO results file: [{image_id, category_id, bbox [x, y, w, h], score}]",
        imports=False,
        writer="multirater.io.detections:write_coco_results",
        target_kind="file",
    ),
)}

IMPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.imports)
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.writer is not None)
