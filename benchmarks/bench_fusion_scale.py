"""Fusion at the paper's scale, as a whole process: `multirater fuse` on 20 models x 20 images x ~1000 detections.

The paper keeps up to ``detections_per_img`` = 1000 detections per image above a score floor of 0.001, so an
ensemble of 20 models fuses about 400,000 boxes. Two workloads of that size (20 images of 2048 px, 60 organoids
of 40-160 px each):

- ``clustered`` (default): what a detector at that floor gives. Per model and image: each organoid found with
  probability 0.8 (box jittered by 6 % of its size, score ~ Beta(5, 2)); 20 low-score boxes around every
  organoid (centre shifted by N(0, 0.35) of its size, each side scaled by exp(N(0, 0.35)), score 0.001 + 0.2 *
  Beta(1, 12)); 200 low-score boxes anywhere (sides ~ 60 px * exp(N(0, 0.5)), score 0.001 + 0.05 * Beta(1,
  20)); then the detector's own per-class NMS at IoU 0.5 and the best 1000 kept. Most boxes are low-score and
  cluster around the organoids, as they do.
- ``uniform``: the engine benchmark's workload (bench_engine.py) with 940 false positives per image and model,
  spread uniformly (395,231 boxes): the input of issue 12's measurement.

Each model's detections are written with ``write_detections`` (as ``multirater predict`` writes them), then
``multirater fuse`` runs as a fresh process, with one source name per model (as the workflow passes them),
best of ``--repeat`` runs; wall time and peak resident memory (the child's ru_maxrss) are compared with the
targets (2 s, 1 GB). The baseline is ensemble-boxes WBF reading the same files in a fresh process
(wbf_files.py); it takes minutes at this scale (``--no-wbf`` skips it).

Run: ``.venv/bin/python benchmarks/bench_fusion_scale.py [--workload clustered|uniform] [--folder DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import SIZE, as_detections, workload  # noqa: E402
from whole_process import best_of, fuse_command, measure, wbf_available, wbf_command  # noqa: E402

from multirater.core.boxes import iou_matrix  # noqa: E402
from multirater.io.detections import Detections, read_detections, write_detections  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_MB = 1024.0
N_IMAGES, N_MODELS, N_OBJECTS = 20, 20, 60


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.5, keep: int = 1000) -> np.ndarray:
    """Greedy per-class NMS as a detector applies it: indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    overlap = iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for k in range(len(order)):
        if suppressed[k]:
            continue
        kept.append(k)
        if len(kept) == keep:
            break
        suppressed |= overlap[k] > threshold
    return order[np.array(kept, dtype=np.int64)]


def clustered(seed: int = 0) -> list[Detections]:
    """One Detections per model (see the module docstring)."""
    rng = np.random.default_rng(seed)
    return clustered_models(organoid_boxes(rng), N_MODELS, rng)


def organoid_boxes(rng: np.random.Generator) -> list[np.ndarray]:
    """The organoids of each image: (N_OBJECTS, 4) xywh boxes (the ground truth)."""
    organoids = []
    for _ in range(N_IMAGES):
        wh = rng.uniform(40, 160, (N_OBJECTS, 2))
        organoids.append(np.column_stack([rng.uniform(0, SIZE - wh), wh]))
    return organoids


def clustered_models(organoids: list[np.ndarray], n_models: int, rng: np.random.Generator) -> list[Detections]:
    """``n_models`` detectors' outputs on the images of ``organoids`` (see the module docstring)."""
    models = []
    for _ in range(n_models):
        columns: dict[str, list[np.ndarray]] = {"image": [], "boxes": [], "scores": []}
        for image, objects in enumerate(organoids, start=1):
            found = objects[rng.random(N_OBJECTS) < 0.8]
            hits = found + rng.normal(0, 0.06, found.shape) * found[:, [2, 3, 2, 3]]
            around = np.repeat(objects, 20, axis=0)
            sides = around[:, 2:] * np.exp(rng.normal(0, 0.35, (len(around), 2)))
            centres = around[:, :2] + around[:, 2:] / 2 + rng.normal(0, 0.35, (len(around), 2)) * around[:, 2:]
            anywhere_sides = 60 * np.exp(rng.normal(0, 0.5, (200, 2)))
            anywhere = np.column_stack([rng.uniform(0, SIZE - anywhere_sides), anywhere_sides])
            boxes = np.r_[hits, np.column_stack([centres - sides / 2, sides]), anywhere]
            boxes[:, 2:] = np.abs(boxes[:, 2:])
            scores = np.r_[rng.beta(5, 2, len(hits)), 0.001 + 0.2 * rng.beta(1, 12, len(around)),
                           0.001 + 0.05 * rng.beta(1, 20, 200)]
            kept = _nms(boxes, scores)
            columns["image"].append(np.full(len(kept), image, dtype=np.int64))
            columns["boxes"].append(boxes[kept])
            columns["scores"].append(scores[kept])
        image_id = np.concatenate(columns["image"])
        models.append(Detections(
            image_ids=np.arange(1, N_IMAGES + 1), image_id=image_id, category_id=np.ones_like(image_id),
            boxes=np.concatenate(columns["boxes"]), scores=np.concatenate(columns["scores"]),
        ))
    return models


def uniform() -> list[Detections]:
    """The engine benchmark's workload with 940 false positives per image and model."""
    gt, models = workload(n_fp=940)
    image_ids = [im["id"] for im in gt["images"]]
    return [as_detections(m, image_ids) for m in models]


def write_models(models: list[Detections], folder: Path) -> list[Path]:
    paths = []
    for k, model in enumerate(models):
        model.meta = {"strategy": "ls", "config_id": f"{k:08x}"}
        paths.append(folder / f"model{k:02d}.json")
        write_detections(paths[-1], model)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--folder", type=Path, default=None,
                        help="keep the generated files here (reused when they exist) instead of a temporary folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-wbf", action="store_true", help="skip the ensemble-boxes baseline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        paths = sorted(folder.glob("model*.json"))
        if len(paths) != N_MODELS:
            start = time.perf_counter()
            paths = write_models(clustered() if args.workload == "clustered" else uniform(), folder)
            print(f"generated in {time.perf_counter() - start:.1f} s")
        n_boxes = sum(len(read_detections(p)) for p in paths)
        print(f"workload {args.workload}: {N_IMAGES} images of {SIZE} px, {N_MODELS} models, {n_boxes} boxes "
              f"({n_boxes / N_IMAGES / N_MODELS:.0f} per image and model), {folder}")

        sources = [f"rater{k % 4 + 1}" for k in range(N_MODELS)]
        out = folder / "fused.json"
        ours = best_of(fuse_command(paths, out, sources), args.repeat)
        fused = read_detections(out)
        verdict = "meets" if ours.wall <= TARGET_SECONDS and ours.peak_mb <= TARGET_MB else "MISSES"
        print(f"multirater fuse (whole process)    {ours.wall:7.2f} s  CPU {ours.cpu:6.2f} s  peak "
              f"{ours.peak_mb:5.0f} MB  ({len(fused)} fused boxes): {verdict} the targets "
              f"({TARGET_SECONDS:g} s, {TARGET_MB:g} MB)")
        if args.no_wbf or not wbf_available():
            print("ensemble-boxes WBF skipped" + ("" if args.no_wbf else " (pip install '.[bench]')"))
            return
        wbf = measure(wbf_command(paths, folder / "wbf.json", SIZE))
        print(f"ensemble-boxes WBF (whole process) {wbf.wall:7.2f} s  CPU {wbf.cpu:6.2f} s  peak "
              f"{wbf.peak_mb:5.0f} MB  ratio {wbf.wall / ours.wall:5.1f}x (CPU {wbf.cpu / ours.cpu:.1f}x)")


if __name__ == "__main__":
    main()
