"""Importers from annotation formats users bring (``multirater import``) into a dataset manifest.

- ``multiorg``: MultiOrg JSON, one file per image per annotator (``..._Annotator_A.json``).
- ``napari-organoid-counter``: the plugin's JSON, one folder per rater.
- ``csv``: the reference code's CSV, one file per image with an annotator column.
"""

from __future__ import annotations

import argparse
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
    from ..errors import ErrorCollector, UserError
    from . import csv_files, multiorg, napari_organoid_counter
    from .common import write_dataset

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


def register_import(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="convert multiorg / napari-organoid-counter / csv annotations into a dataset")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--images", required=True, help="folder of the images (PNG, TIFF, JPEG)")
    p.add_argument("--labels", required=True, help="annotations of the multi-rater images (see README for the layout of each format)")
    p.add_argument("--consensus-labels", default=None, help="annotations of the consensus (test) images, same format")
    p.add_argument("--out", required=True, help="new dataset folder (gets dataset.yaml and one COCO file per rater)")
    p.add_argument("--name", default=None, help="dataset name (default: the --out folder's name)")
    p.add_argument("--axes", choices=("rc", "xy"), default="rc",
                   help="napari-organoid-counter only: rc (default) reads x1/x2 as rows, as napari stores them; xy as columns")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    manifest = import_dataset(args.format, args.images, args.labels, args.out, args.consensus_labels, args.name, args.axes)
    print(f"wrote {manifest}")
    return 0
