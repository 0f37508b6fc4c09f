"""How much of an epoch validation takes on a MultiOrg-shaped run, before (every window, every epoch) and after
(``training.val_windows: objects``, ``training.val_every``).

MultiOrg-shaped, scaled down by ``--scale`` (default 4, so that a CPU measures it in minutes): 16-bit TIFFs of
6390 x 5724 px / scale, crops and windows of 2048 / scale px with an overlap of 384 / scale (the MultiOrg
config's 4 x 4 windows per image), training and validation images in MultiOrg's ratio (about 4 : 1: the
authors' split has about 284 training and 72 validation images), ``--objects`` organoid discs per image. One
epoch = one crop per training image (as ``multirater train`` does).

Each setting trains one epoch through run_training (label sampling, batch 2) and reads ``metrics.csv``:
``seconds`` (training) and ``val_seconds`` (validation). Validation every k epochs costs val_seconds / k per
epoch on average; its share of an epoch is that over (seconds + that).

    python benchmarks/bench_validation.py                          # goat (the MultiOrg config's model), CPU
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

from large_tiffs import write_large_dataset
from multirater.data.dataset import load_dataset
from multirater.training.inputs import read_splits
from multirater.training.job import prepare_job
from multirater.training.labels import Strategy
from multirater.training.loop import run_training
from multirater.training.settings import job_config
from multirater.training.validation import validation_windows


def one_epoch(manifest: Path, splits: Path, model: dict, windows: str, out: Path) -> tuple[float, float, tuple]:
    """(training seconds, validation seconds, (windows predicted, windows in all)) of one epoch."""
    dataset = load_dataset(manifest)
    split_ids = read_splits(splits, dataset)
    config = job_config(model, {"epochs": 1, "batch_size": 2, "freeze": "none", "val_windows": windows}, windows)
    with open(out.with_suffix(".log"), "w") as log:
        code = run_training(dataset, split_ids, Strategy("ls"), config, out, torch.device("cpu"), log=log)
    if code != 0:
        sys.exit(f"training exited {code}; see {out.with_suffix('.log')}")
    with open(out / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    job, _ = prepare_job(dataset, split_ids, Strategy("ls"), config, out.with_name(out.name + "_count"),
                         torch.device("cpu"))
    return float(row["seconds"]), float(row["val_seconds"]), validation_windows(job)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--objects", type=int, default=40, help="organoids per image (placed uniformly)")
    parser.add_argument("--model", default="goat")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 5], help="val_every values to report")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height, tile, overlap = (v // args.scale for v in (6390, 5724, 2048, 384))
    model = {"name": args.model, "min_size": tile, "max_size": tile, "tile_size": tile, "tile_overlap": overlap}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, splits = write_large_dataset(root, args.train, width, height, val=args.val, objects=args.objects)
        results = {w: one_epoch(manifest, splits, model, w, root / w) for w in ("all", "objects")}
    print(f"MultiOrg-shaped / {args.scale}: {args.train} training + {args.val} validation images of {width} x {height} "
          f"px, {args.objects} objects each, {tile} px crops and windows (overlap {overlap}); {args.model}, batch 2, "
          f"CPU, {args.threads} thread(s); {time.perf_counter() - start:.0f} s in all")
    print("| validation | windows | training s | validation s | val_every | validation share of an epoch |")
    print("|---|---|---|---|---|---|")
    for windows, (train_s, val_s, (used, every)) in results.items():
        for k in args.every:
            share = (val_s / k) / (train_s + val_s / k)
            print(f"| {windows} | {used} of {every} | {train_s:.1f} | {val_s:.1f} | {k} | {100 * share:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
