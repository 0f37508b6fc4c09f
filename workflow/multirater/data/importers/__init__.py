"""Importers from annotation formats users bring (``multirater import``) into a dataset manifest.

- ``multiorg``: MultiOrg as published (the unpacked download: ``train/`` and ``test/``, label files beside
  each TIFF), or a flat folder of ``..._Annotator_A.json`` files.
- ``napari-organoid-counter``: the plugin's JSON, one folder per rater.
- ``csv``: the reference code's CSV, one file per image with an annotator column.

Test images: a consensus (``consensus_labels``), each rater's own labels of them (``test_labels``, in the
layout of ``labels``: one test label set ``test_<rater>`` per rater), or both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from multirater.data.formats import FORMATS, IMPORT_FORMATS  # the registry: every format by name

if TYPE_CHECKING:
    from multirater.data.importers.assembly import Imported
    from multirater.data.importers.common import Annotations

TEST_LABEL_SET_PREFIX = "test_"  # a rater's labels of the test images: the test label set test_<rater>


def import_dataset(
    fmt: str,
    images: str | Path,
    labels: str | Path | None,
    out: str | Path,
    consensus_labels: str | Path | None = None,
    name: str | None = None,
    axes: str = "rc",
    majority: bool = False,
    test_labels: str | Path | None = None,
) -> Imported:
    """Read ``labels`` (and ``consensus_labels``) in format ``fmt`` and write a dataset into ``out``.

    ``labels`` None: MultiOrg as published, ``images`` being the unpacked download (the labels lie beside
    the images; train label files give the raters, test label files the test label sets; raters may have
    labelled different images). ``majority``: add the majority consensus of the test label sets as the
    label set ``majority`` (``multirater.data.consensus``).
    """
    from multirater.core.errors import ErrorCollector, UserError
    from multirater.data.importers.assembly import write_imported_dataset

    if not isinstance(fmt, str) or fmt not in IMPORT_FORMATS:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(IMPORT_FORMATS)})", None, "format")
    reader = FORMATS[fmt].reader()
    out = Path(out)
    name = name or out.name
    errors = ErrorCollector()
    if labels is None:
        if not FORMATS[fmt].published:
            raise UserError(f"the {fmt} format needs the folder of label files", None, "labels")
        for setting, value in (("consensus_labels", consensus_labels), ("test_labels", test_labels)):
            if value is not None:
                raise UserError("MultiOrg as published holds its test labels beside the test images", None,
                                setting)
        published = reader.collect_published(Path(images), errors)
        errors.raise_if_any()
        return write_imported_dataset(out, Path(images), published.raters, published.label_sets, name,
                                      coverage="partial", images=published.images, majority=majority)

    raters, skipped = reader.collect_with_skipped(Path(labels), errors, axes=axes)
    consensus = reader.collect_with_skipped(Path(consensus_labels), errors, True, axes)[0] if consensus_labels \
        else None
    test_raters: Annotations = {}
    if test_labels:
        test_raters, test_skipped = reader.collect_with_skipped(Path(test_labels), errors, axes=axes,
                                                                setting="test_labels")
        skipped += test_skipped
    if test_labels and not test_raters and not errors:
        errors.add("no annotation files found", test_labels, "test_labels")
    errors.raise_if_any()
    label_sets = {} if consensus is None else {"consensus": consensus}
    label_sets.update({f"{TEST_LABEL_SET_PREFIX}{rater}": boxes for rater, boxes in test_raters.items()})
    imported = write_imported_dataset(out, Path(images), raters, label_sets, name, majority=majority)
    if skipped:
        imported.found.append(f"skipped {skipped} files without boxes (the plugin's .meta.json, .json.draft and "
                              ".csv files, images, others)")
    return imported
