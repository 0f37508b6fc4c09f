"""A small MultiOrg-shaped dataset in exactly the published layout, written by the tests.

    ROOT/{train,test}/{Normal,Macros}/Plate_N/image_Y/image_Y.tif[f]   one 16-bit grey TIFF (non-square)
                                                    /image_Y_<suffix>.json  {"0": [[r, c] x 4], ...}

- train: 8 images, each labelled by one annotator (suffix ``Annotator_A`` or ``Annotator_B``, 4 each);
- test: 3 images, each with three label sets (``t0``, ``t1_A``, ``t1_B``);
- folder and file names repeat across plates (``image_0`` in every plate);
- one train image (384 x 320 px) is larger than a detector's ``min_size`` of 256, so it must be tiled.

Organoids are bright discs with a darker rim on an uneven background (16-bit values well above 255). Each
label set draws the true boxes with a little jitter, misses a few and adds a few; the corners of a box are
written in napari's rectangle order or a rotation of it (real exports mix orders). Everything follows from
the seed. ``write_multiorg(root)`` returns what it wrote, in COCO terms, so tests can compare an import
with it; ``python tests/multiorg_fixture.py ROOT`` writes it for a workflow run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

LABEL_SETS = ("t0", "t1_A", "t1_B")
# (split, condition, plate, image folder, label suffixes, width, height, TIFF suffix)
LAYOUT = [
    ("train", "Normal", "Plate_1", "image_0", ("Annotator_A",), 160, 128, ".tiff"),
    ("train", "Normal", "Plate_1", "image_1", ("Annotator_B",), 160, 128, ".tiff"),
    ("train", "Normal", "Plate_2", "image_0", ("Annotator_B",), 176, 128, ".tif"),
    ("train", "Normal", "Plate_2", "image_1", ("Annotator_A",), 160, 144, ".tiff"),
    ("train", "Macros", "Plate_1", "image_0", ("Annotator_A",), 384, 320, ".tiff"),  # larger than min_size 256
    ("train", "Macros", "Plate_1", "image_1", ("Annotator_B",), 160, 128, ".tiff"),
    ("train", "Macros", "Plate_3", "image_0", ("Annotator_A",), 144, 128, ".tiff"),
    ("train", "Macros", "Plate_3", "image_1", ("Annotator_B",), 160, 112, ".tiff"),
    ("test", "Normal", "Plate_4", "image_0", LABEL_SETS, 160, 128, ".tiff"),
    ("test", "Macros", "Plate_4", "image_0", LABEL_SETS, 176, 144, ".tiff"),
    ("test", "Macros", "Plate_5", "image_0", LABEL_SETS, 160, 128, ".tif"),
]


@dataclass
class FixtureImage:
    """One image the fixture wrote: its TIFF (relative to ROOT), size and each label file's COCO boxes."""

    file_name: str  # relative to ROOT, '/'-separated
    split: str
    width: int
    height: int
    boxes: dict[str, list[list[float]]] = field(default_factory=dict)  # suffix -> COCO [x, y, w, h] boxes


def write_multiorg(root: Path, seed: int = 0) -> list[FixtureImage]:
    """Write the fixture below ``root`` (created); return what was written, in ``LAYOUT`` order."""
    rng = np.random.default_rng(seed)
    written = []
    for split, condition, plate, folder, suffixes, width, height, tiff_suffix in LAYOUT:
        directory = root / split / condition / plate / folder
        directory.mkdir(parents=True, exist_ok=True)
        truth = _organoids(rng, width, height)
        tifffile.imwrite(directory / f"{folder}{tiff_suffix}", _render(rng, truth, width, height))
        image = FixtureImage(f"{split}/{condition}/{plate}/{folder}/{folder}{tiff_suffix}", split, width, height)
        for suffix in suffixes:
            rows_cols = _one_rater(rng, truth, width, height)
            entries = {str(k): _corners(r0, c0, r1, c1, rotation=k % 4) for k, (r0, c0, r1, c1) in enumerate(rows_cols)}
            (directory / f"{folder}_{suffix}.json").write_text(json.dumps(entries))
            image.boxes[suffix] = [[c0, r0, c1 - c0, r1 - r0] for r0, c0, r1, c1 in rows_cols]
        written.append(image)
    return written


def _organoids(rng: np.random.Generator, width: int, height: int) -> list[tuple[float, float, float]]:
    """(centre row, centre col, radius) of 3 to 6 discs (more on a large image) apart from each other."""
    n = int(rng.integers(3, 7)) * (3 if width * height > 256 * 256 else 1)
    discs: list[tuple[float, float, float]] = []
    for _ in range(200 * n):
        if len(discs) == n:
            break
        radius = float(rng.uniform(7, 14))
        row, col = (float(rng.uniform(radius + 2, size - radius - 2)) for size in (height, width))
        if all(np.hypot(row - r, col - c) > radius + q + 4 for r, c, q in discs):
            discs.append((row, col, radius))
    return discs


def _render(rng: np.random.Generator, discs: list[tuple[float, float, float]], width: int, height: int) -> np.ndarray:
    """A 16-bit brightfield-like image: uneven background, bright discs with a darker rim, noise."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    image = 9000.0 + 3000.0 * cols / width + 1500.0 * np.sin(rows / height * np.pi)
    for row, col, radius in discs:
        distance = np.hypot(rows - row, cols - col)
        image += np.where(distance < radius * 0.8, 22000.0, 0.0)
        image += np.where((distance >= radius * 0.8) & (distance < radius), -5000.0, 0.0)
    image += rng.normal(0.0, 600.0, image.shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


def _one_rater(
    rng: np.random.Generator, discs: list[tuple[float, float, float]], width: int, height: int
) -> list[tuple[float, float, float, float]]:
    """One label set's boxes (r0, c0, r1, c1): the discs with 1-px jitter, about 1 in 6 missed, maybe one extra."""
    boxes = []
    for row, col, radius in discs:
        if rng.random() < 1 / 6:
            continue
        r0, c0, r1, c1 = (round(float(v + rng.uniform(-1, 1)), 1)
                          for v in (row - radius, col - radius, row + radius, col + radius))
        boxes.append((max(r0, 0.0), max(c0, 0.0), min(r1, float(height)), min(c1, float(width))))
    if rng.random() < 0.3:  # a spurious box on the background
        r0, c0 = float(rng.integers(0, height - 12)), float(rng.integers(0, width - 12))
        boxes.append((r0, c0, r0 + 10.0, c0 + 10.0))
    return boxes


def _corners(r0: float, c0: float, r1: float, c1: float, rotation: int = 0) -> list[list[float]]:
    """The four corners as [row, col] in napari's rectangle order, rotated by ``rotation`` places."""
    corners = [[r0, c0], [r1, c0], [r1, c1], [r0, c1]]
    return corners[rotation:] + corners[:rotation]


def main() -> None:
    parser = argparse.ArgumentParser(description="write the MultiOrg-shaped test fixture")
    parser.add_argument("root", type=Path, help="folder to write (gets train/ and test/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    written = write_multiorg(args.root, args.seed)
    print(f"wrote {len(written)} images below {args.root}")


if __name__ == "__main__":
    main()
