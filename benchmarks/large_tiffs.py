"""MultiOrg-shaped datasets of large 16-bit grey TIFFs for the training benchmarks (bench_train_memory.py,
bench_input.py, gpu_check.py): two raters who labelled every image, bright organoid discs on an uneven
background with noise, boxes 20-200 px (MultiOrg's organoids are about 20-400 px at full resolution).

    write_large_dataset(out, images=18, width=4000, height=3600)   # -> (manifest, splits.json)

Images are written uncompressed (tifffile's default: contiguous, so training memory-maps them) unless
``compression`` is given (e.g. "zlib": strips, read strip by strip). Everything follows from the seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from multirater.data.writer import DatasetContent, coco_dict, write_dataset_folder

RATERS = ("rater1", "rater2")


def render(rng: np.random.Generator, width: int, height: int, discs: list[tuple[float, float, float]]) -> np.ndarray:
    """A 16-bit image: a gradient background, ``discs`` (centre x, centre y, radius) bright with a dark rim, noise."""
    image = rng.standard_normal((height, width), dtype=np.float32)
    image *= 600.0
    image += (9000.0 + 3000.0 * np.arange(width, dtype=np.float32) / width)[None, :]
    image += (1500.0 * np.sin(np.arange(height, dtype=np.float32) / height * np.pi))[:, None]
    for cx, cy, r in discs:
        x0, x1, y0, y1 = int(cx - r), int(cx + r) + 1, int(cy - r), int(cy + r) + 1
        yy, xx = np.mgrid[y0:y1, x0:x1]
        distance = np.hypot(xx - cx, yy - cy)
        patch = image[y0:y1, x0:x1]
        patch += np.where(distance < 0.8 * r, 22000.0, np.where(distance < r, -5000.0, 0.0)).astype(np.float32)
    return np.clip(image, 0, 65535).astype(np.uint16)


def place_discs(rng: np.random.Generator, width: int, height: int, n: int,
                region: tuple[int, int, int, int] | None = None) -> list[tuple[float, float, float]]:
    """Up to ``n`` non-overlapping discs of radius 10-100 px inside ``region`` (x0, y0, x1, y1; the image)."""
    x0, y0, x1, y1 = region or (0, 0, width, height)
    discs: list[tuple[float, float, float]] = []
    for _ in range(50 * n):
        if len(discs) == n:
            break
        r = float(rng.uniform(10, 100))
        cx, cy = float(rng.uniform(x0 + r + 2, x1 - r - 2)), float(rng.uniform(y0 + r + 2, y1 - r - 2))
        if all(np.hypot(cx - x, cy - y) > r + q + 4 for x, y, q in discs):
            discs.append((cx, cy, r))
    return discs


def write_large_dataset(out: Path, images: int, width: int, height: int, val: int = 2, seed: int = 0,
                        objects: int = 40, compression: str | None = None, val_size: tuple[int, int] | None = None,
                        val_region: tuple[int, int, int, int] | None = None) -> tuple[Path, Path]:
    """``images`` training and ``val`` validation images (ids 1.., the validation ones last) below ``out``;
    returns (dataset.yaml, splits.json). ``val_size``: (width, height) of the validation images (default the
    training images'); ``val_region``: where their objects lie (x0, y0, x1, y1; default everywhere), so that
    validation on windows that hold objects predicts only those."""
    rng = np.random.default_rng(seed)
    total, size = images + val, (width, height)

    def build(image_dir: Path) -> DatasetContent:
        image_dir.mkdir(parents=True)
        records, annotations = [], {r: [] for r in RATERS}
        for image_id in range(1, total + 1):
            is_val = image_id > images
            region = val_region if is_val else None
            width, height = (val_size or size) if is_val else size
            discs = place_discs(rng, width, height, objects, region)
            name = f"image_{image_id:03d}.tif"
            tifffile.imwrite(image_dir / name, render(rng, width, height, discs), compression=compression)
            records.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for rater, jitter in zip(RATERS, (1.0, 3.0)):
                for cx, cy, r in discs:
                    x, y = cx - r + rng.uniform(-jitter, jitter), cy - r + rng.uniform(-jitter, jitter)
                    x, y = max(x, 0.0), max(y, 0.0)
                    w, h = min(2 * r, width - x), min(2 * r, height - y)
                    annotations[rater].append({"id": len(annotations[rater]) + 1, "image_id": image_id,
                                               "category_id": 1, "bbox": [round(v, 2) for v in (x, y, w, h)],
                                               "area": round(w * h, 2), "iscrowd": 0})
        return DatasetContent(name=f"large-{size[0]}x{size[1]}", raters={r: coco_dict(records, annotations[r])
                                                                       for r in RATERS}, consensus=None)

    manifest = write_dataset_folder(out / "ds", build)
    splits = out / "splits.json"
    splits.write_text(json.dumps({"train": list(range(1, images + 1)), "val": list(range(images + 1, total + 1)),
                                  "test": []}))
    return manifest, splits


def write_splits(path: Path, train: list[int], val: list[int]) -> Path:
    """A splits.json of these training and validation ids."""
    path.write_text(json.dumps({"train": train, "val": val, "test": []}))
    return path
