"""The one writer of dataset folders (synthetic data and every importer): one COCO file per rater and
per test label set (``consensus.json``, ``<label set>.json``), ``dataset.yaml`` and, for generated data,
``images/`` and ``test_objects.csv`` (the test objects' latent facts), all or nothing.

The folder is built beside its destination, checked with ``load_dataset`` (the checks every command
runs) and only then moved into place, so a failure leaves nothing behind and a reader never finds a
manifest before its files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import UserError
from multirater.core.files import read_yaml, staging_dir, write_json, write_text, write_yaml
from multirater.data.dataset import load_dataset
from multirater.data.manifest import CONSENSUS
from multirater.data.synthetic.test_objects import TEST_OBJECTS

CATEGORIES = [{"id": 1, "name": "organoid"}]
MANIFEST = "dataset.yaml"
REPEAT_SUFFIX = "_pass2"  # a rater's second-pass file: <rater>_pass2.json
IMAGE_FOLDER = "images"  # where generated images go, inside the dataset folder


@dataclass(frozen=True)
class DatasetContent:
    """What a dataset folder holds besides its images."""

    name: str
    raters: dict[str, dict]  # rater name -> COCO dict, in the manifest's order
    consensus: dict | None
    image_dir: Path | None = None  # an existing image folder; None: the builder wrote images/ itself
    repeats: dict[str, dict] | None = None  # rater name -> COCO dict of a second pass on some images
    label_sets: dict[str, dict] | None = None  # test label sets besides the consensus: name -> COCO dict
    rater_coverage: str = "complete"  # or "partial": raters labelled different images
    test_objects: str | None = None  # generated data: the text of test_objects.csv (beside the manifest)


def coco_dict(images: list[dict], annotations: list[dict], categories: list[dict] = CATEGORIES) -> dict:
    """A COCO detection dict (keys in the order every writer uses)."""
    return {"images": images, "annotations": annotations, "categories": [dict(c) for c in categories]}


def write_dataset_folder(
    out: str | Path, build: Callable[[Path], DatasetContent], replace_dataset: bool = False
) -> Path:
    """Write a dataset into the folder ``out``; return its manifest.

    ``build(images_dir)`` returns the content; a generator also writes its images into ``images_dir``
    (which it creates). ``out`` must not exist or be empty; with ``replace_dataset`` it may also hold a
    dataset written earlier, which is replaced (its images folder, COCO files and manifest).
    """
    out = Path(out)
    _check_destination(out, replace_dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out.parent, prefix=f".{out.name}.")
    try:
        content = build(staging / IMAGE_FOLDER)
        _write_content(staging, content, out)
        # staging is a sibling of out: a relative image path resolves the same from both.
        load_dataset(staging / MANIFEST)
        _move_into(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / MANIFEST


def _check_destination(out: Path, replace_dataset: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError("exists and is not a folder", out)
    if not any(out.iterdir()) or (replace_dataset and (out / MANIFEST).is_file()):
        return
    holds = f" and holds no {MANIFEST} to replace" if replace_dataset else ""
    raise UserError(f"folder exists and is not empty{holds}", out)


def _write_content(folder: Path, content: DatasetContent, out: Path) -> None:
    for rater, coco in content.raters.items():
        write_json(folder / f"{rater}.json", coco, indent=None)
    images = IMAGE_FOLDER if content.image_dir is None else os.path.relpath(content.image_dir.resolve(), out.resolve())
    manifest: dict = {"name": content.name, "images": images, "raters": {r: f"{r}.json" for r in content.raters}}
    if content.consensus is not None:
        write_json(folder / f"{CONSENSUS}.json", content.consensus, indent=None)
        manifest["consensus"] = f"{CONSENSUS}.json"
    if content.label_sets:
        for label_set, coco in content.label_sets.items():
            write_json(folder / f"{label_set}.json", coco, indent=None)
        manifest["test_label_sets"] = {s: f"{s}.json" for s in content.label_sets}
    if content.test_objects is not None:
        write_text(folder / TEST_OBJECTS, content.test_objects)
    if content.rater_coverage != "complete":
        manifest["rater_coverage"] = content.rater_coverage
    if content.repeats:
        for rater, coco in content.repeats.items():
            write_json(folder / f"{rater}{REPEAT_SUFFIX}.json", coco, indent=None)
        manifest["repeats"] = {r: f"{r}{REPEAT_SUFFIX}.json" for r in content.repeats}
    write_yaml(folder / MANIFEST, manifest)


def _move_into(staging: Path, out: Path) -> None:
    """Put the finished folder in place of ``out``, replacing a dataset written there before."""
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(staging, out)
        return
    for name in _previous_dataset_files(out):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    # dataset.yaml last, so a reader never finds a manifest before its files
    for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):
        os.replace(item, out / item.name)
    staging.rmdir()


def _previous_dataset_files(out: Path) -> list[str]:
    """Names, inside ``out``, of the dataset written there before (read leniently: it is replaced)."""
    names = [IMAGE_FOLDER, f"{CONSENSUS}.json", TEST_OBJECTS, MANIFEST]
    try:
        old = read_yaml(out / MANIFEST)
    except UserError:
        return names
    for key in ("raters", "test_label_sets", "repeats"):
        files = old.get(key) if isinstance(old, dict) else None
        for file in files.values() if isinstance(files, dict) else []:
            # only plain file names: a path elsewhere is not this folder's to delete
            if isinstance(file, str) and Path(file).name == file and file not in (".", ".."):
                names.append(file)
    return names
