"""The dataset manifest ``dataset.yaml``: the image folder, a COCO file per rater, and the test label sets.

``read_manifest`` reads the YAML alone (no COCO file, no image), so the workflow can learn the raters,
the test label sets and their files at parse time without loading the dataset.

Keys (paths relative to the manifest's folder):

- ``images``: the image folder; ``raters``: rater name -> COCO file of the images that rater labelled;
- ``consensus``: COCO file of jointly labelled test images (the test label set named ``consensus``);
- ``test_label_sets``: more test label sets, name -> COCO file (e.g. each expert at each time point);
- ``rater_coverage``: ``complete`` (default: every rater labels every rater image, checked) or ``partial``
  (raters labelled different, overlapping or disjoint, image sets);
- ``repeats``: rater name -> COCO file of a second annotation pass (intra-rater agreement only);
- ``name``, ``description``: free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_yaml

CONSENSUS = "consensus"
# Rater and label-set names become strategy tokens ``rs-<rater>`` and file names: no '-', ':' or '/'.
RATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
COVERAGES = ("complete", "partial")
KNOWN_KEYS = ("name", "images", "raters", "consensus", "test_label_sets", "rater_coverage", "repeats",
              "description")


@dataclass(frozen=True)
class Manifest:
    """A parsed ``dataset.yaml``; every path is resolved against the manifest's folder."""

    path: Path
    name: str
    image_dir: Path
    rater_files: dict[str, Path]  # rater name -> COCO file, in the manifest's order
    consensus_file: Path | None
    # rater name -> COCO file of a second annotation pass on some of their images (intra-rater
    # agreement only: never training labels)
    repeat_files: dict[str, Path] = field(default_factory=dict)
    # test label sets besides the consensus: name -> COCO file, in the manifest's order
    extra_label_set_files: dict[str, Path] = field(default_factory=dict)
    rater_coverage: str = "complete"

    @property
    def label_set_files(self) -> dict[str, Path]:
        """Every test label set: ``"consensus"`` first if there is one, then ``test_label_sets`` in order."""
        sets = {CONSENSUS: self.consensus_file} if self.consensus_file is not None else {}
        sets.update(self.extra_label_set_files)
        return sets

    @property
    def files(self) -> dict[str, Path]:
        """Every annotation source: the raters, then the test label sets (``"consensus"`` first)."""
        return {**self.rater_files, **self.label_set_files}


def read_manifest(path: str | Path, errors: ErrorCollector | None = None) -> Manifest:
    """Read and check ``dataset.yaml`` (keys, names, paths), without opening the files it names.

    With ``errors``, problems that still leave a usable manifest are added to it (the caller goes on
    checking the COCO files and reports everything at once); without it they are raised here.
    Problems that leave nothing to go on (no image folder, no raters) are always raised.
    """
    path = Path(path)
    collector = ErrorCollector() if errors is None else errors
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"expected a mapping with images and raters, got {type(data).__name__}", path)
    root = path.parent

    for key in sorted(set(data) - set(KNOWN_KEYS)):
        collector.add(f"unknown key (expected {', '.join(k for k in KNOWN_KEYS if k != 'description')})", path, key)
    images = data.get("images")
    if not isinstance(images, str):
        collector.add(f"must name the image folder, got {images!r}", path, "images")
        collector.raise_if_any()
    image_dir = Path(images) if Path(images).is_absolute() else (root / images).resolve()

    raters = data.get("raters")
    if not isinstance(raters, dict) or not raters:
        collector.add(f"must map rater names to COCO files, got {raters!r}", path, "raters")
        collector.raise_if_any()
    rater_files = _named_files(raters, "raters", "rater", path, collector)

    consensus = data.get("consensus")
    consensus_file = None
    if isinstance(consensus, str):
        consensus_file = root / consensus
    elif consensus is not None:
        collector.add(f"must be a path to a COCO JSON file, got {consensus!r}", path, "consensus")

    label_sets = _read_label_sets(data.get("test_label_sets"), rater_files, consensus is not None, path, collector)
    if CONSENSUS in label_sets:  # the consensus, listed among the label sets: one file, one meaning
        consensus_file = label_sets.pop(CONSENSUS)
    coverage = data.get("rater_coverage", "complete")
    if coverage not in COVERAGES:
        collector.add(f"must be one of {', '.join(COVERAGES)}, got {coverage!r}", path, "rater_coverage")
        coverage = "complete"
    repeat_files = _read_repeats(data.get("repeats"), rater_files, path, collector)

    if errors is None:
        collector.raise_if_any()
    name = str(data.get("name") or root.name)
    return Manifest(path, name, image_dir, rater_files, consensus_file, repeat_files, label_sets, coverage)


def _named_files(mapping: dict, key: str, what: str, path: Path, errors: ErrorCollector) -> dict[str, Path]:
    """``{name: file}`` entries with valid names and string paths; the others are reported."""
    files: dict[str, Path] = {}
    for name, file in mapping.items():
        if not isinstance(name, str) or not RATER_NAME.match(name) or (what == "rater" and name == CONSENSUS):
            not_consensus = "; not 'consensus'" if what == "rater" else ""
            errors.add(f"invalid {what} name {name!r} (letters, digits, _ and . only{not_consensus})", path,
                       f"{key}.{name}")
        elif not isinstance(file, str):
            errors.add(f"must be a path to a COCO JSON file, got {file!r}", path, f"{key}.{name}")
        else:
            files[name] = path.parent / file
    return files


def _read_label_sets(
    label_sets: object, rater_files: dict[str, Path], has_consensus: bool, path: Path, errors: ErrorCollector
) -> dict[str, Path]:
    """The optional ``test_label_sets`` mapping: label-set name -> COCO file of the test images.

    A label set shares the namespace of the raters (both are annotation sources) and may be named
    ``consensus`` only when the ``consensus`` key is absent.
    """
    if label_sets is None:
        return {}
    if not isinstance(label_sets, dict) or not label_sets:
        errors.add(f"must map label-set names to COCO files, got {label_sets!r}", path, "test_label_sets")
        return {}
    files = _named_files(label_sets, "test_label_sets", "label-set", path, errors)
    for name in list(files):
        if name in rater_files:
            errors.add(f"{name!r} is also a rater: name test label sets apart from the raters", path,
                       f"test_label_sets.{name}")
            del files[name]
        elif name == CONSENSUS and has_consensus:
            errors.add("the consensus key already names the label set 'consensus'", path, "test_label_sets.consensus")
            del files[name]
    return files


def _read_repeats(repeats: object, rater_files: dict[str, Path], path: Path, errors: ErrorCollector) -> dict[str, Path]:
    """The optional ``repeats`` mapping: rater name -> COCO file of their second pass."""
    if repeats is None:
        return {}
    if not isinstance(repeats, dict):
        errors.add(f"must map rater names to COCO files, got {repeats!r}", path, "repeats")
        return {}
    files: dict[str, Path] = {}
    for name, file in repeats.items():
        if name not in rater_files:
            errors.add(f"{name!r} is not one of the raters ({', '.join(rater_files)})", path, f"repeats.{name}")
        elif not isinstance(file, str):
            errors.add(f"must be a path to a COCO JSON file, got {file!r}", path, f"repeats.{name}")
        else:
            files[name] = path.parent / file
    return files
