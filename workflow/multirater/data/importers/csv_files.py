"""The reference code's CSV: one CSV per image (named after the image), columns x1, y1, x2, y2,
annotator, mask. x is the column, y the row, in pixels. The annotator column names the rater;
``mask`` is not used (boxes only)."""

from __future__ import annotations

import csv
from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError
from multirater.data.importers.common import Annotations, Box, annotation_files, number, ordered_box, safe_rater_name

COLUMNS = ("x1", "y1", "x2", "y2", "annotator")


def read_rows(path: Path, errors: ErrorCollector) -> list[tuple[str, Box]]:
    """(rater, box) of every valid row of one CSV file; bad rows are recorded in ``errors``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                errors.add(f"missing column(s) {', '.join(missing)} (header: {', '.join(header)})", path)
                return []
            rows = []
            for line, row in enumerate(reader, start=2):
                item = f"line {line}"
                v = [number(row[k], path, item, k, errors) for k in ("x1", "y1", "x2", "y2")]
                annotator = (row.get("annotator") or "").strip()
                if not annotator:
                    errors.add("empty annotator", path, item)
                    continue
                if any(x is None for x in v):
                    continue
                rows.append((safe_rater_name(annotator), ordered_box(*v, path, item)))
            return rows
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror})", path) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"malformed CSV: {exc}", path) from None


def collect(
    labels: Path, errors: ErrorCollector, consensus: bool = False, setting: str = "labels"
) -> Annotations | dict[str, list[Box]]:
    """Raters from the annotator column; every image is annotated by every rater found (an image
    without rows of a rater has no objects from them). Consensus: all rows of a file. ``setting``: the
    import setting that named the folder (labels, or test_labels for each rater's test images)."""
    if consensus:
        files = annotation_files(labels, ".csv", "consensus_labels")
        return {p.stem: [box for _, box in read_rows(p, errors)] for p in files}
    per_file = {p.stem: read_rows(p, errors) for p in annotation_files(labels, ".csv", setting)}
    names = sorted({rater for rows in per_file.values() for rater, _ in rows})
    raters: Annotations = {r: {stem: [] for stem in per_file} for r in names}
    for stem, rows in per_file.items():
        for rater, box in rows:
            raters[rater][stem].append(box)
    return raters


def collect_with_skipped(
    labels: Path, errors: ErrorCollector, consensus: bool = False, axes: str = "rc", setting: str = "labels"
) -> tuple[Annotations | dict[str, list[Box]], int]:
    """``collect`` as every importer reads (``multirater.data.formats.FORMATS``): no file is skipped; ``axes`` is
    the napari-organoid-counter format's own."""
    return collect(labels, errors, consensus, setting), 0
