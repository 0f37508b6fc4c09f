"""Importers from annotation formats users bring (``multirater import``) into a dataset manifest.

- ``multiorg``: MultiOrg JSON, one file per image per annotator (``..._Annotator_A.json``).
- ``napari-organoid-counter``: the plugin's JSON, one folder per rater.
- ``csv``: the reference code's CSV, one file per image with an annotator column.
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("multiorg", "napari-organoid-counter", "csv")


def import_dataset(
    fmt: str,
    images: str | Path,
    labels: str | Path,
    out: str | Path,
    consensus_labels: str | Path | None = None,
    name: str | None = None,
    axes: str = "rc",
) -> Path:
    """Read ``labels`` (and ``consensus_labels``) in format ``fmt`` and write a dataset into ``out``."""
    from multirater.core.errors import ErrorCollector, UserError
    from multirater.data.importers import csv_files, multiorg, napari_organoid_counter
    from multirater.data.importers.common import write_dataset

    readers = {
        "multiorg": multiorg.collect,
        "napari-organoid-counter": lambda p, e, consensus=False: napari_organoid_counter.collect(p, e, consensus, axes),
        "csv": csv_files.collect,
    }
    if fmt not in readers:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", None, "--format")
    errors = ErrorCollector()
    raters = readers[fmt](Path(labels), errors)
    consensus = readers[fmt](Path(consensus_labels), errors, consensus=True) if consensus_labels else None
    errors.raise_if_any()
    out = Path(out)
    return write_dataset(out, Path(images), raters, consensus, name or out.name)
