"""The training input pipeline: crops per second the DataLoader delivers from MultiOrg-size TIFFs, with 0, 1, 2 ...
loader workers, beside the time one training step of the same batch takes, and so how many workers a step
needs in order not to wait for its data.

Workload: ``--images`` 16-bit grey TIFFs of 6390 x 5724 px (MultiOrg's size; large_tiffs.py, uncompressed
unless ``--compression``), label sampling over two raters, the job's 2048 px training crops (one per image per
epoch), in batches of 2, as ``multirater train`` makes them (multirater.training.samples: window read, labels
cut to the crop, augmentation when on, pinned memory on CUDA). Each run iterates ``--epochs`` epochs through a
fresh loader (worker start-up included) and reports

- crops/s: crops delivered per second of wall-clock time;
- crops/CPU-s: crops per CPU second of this process and its workers (on a shared machine this is what a
  worker with a core of its own delivers: other jobs steal wall time, not CPU time).

The training step (``--model``, default the MultiOrg config's ``goat``) is timed on one batch of the same crops:
forward, backward and optimizer step, the best of ``--steps`` after one warm-up step (on CUDA with AMP, as
``multirater train`` runs it there). Workers needed = ceil(step's crops/s / one worker's crops/CPU-s).

    python benchmarks/bench_input.py                                   # workers 0 1 2, CPU, step of goat
    python benchmarks/bench_input.py --device cuda --workers 0 1 2 4 8 15 --model resnet50_fpn
    python benchmarks/bench_input.py --step-seconds 0.3                # a step time measured elsewhere
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from large_tiffs import write_large_dataset
from multirater.data.dataset import load_dataset
from multirater.training.inputs import read_splits
from multirater.training.job import prepare_job
from multirater.training.labels import Strategy, epoch_order
from multirater.training.loop import epoch_seed, train_step
from multirater.training.progress import Progress
from multirater.training.samples import to_device
from multirater.training.settings import job_config

MULTIORG = (6390, 5724)


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the loader's workers, once an epoch ends)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def job_for(manifest: Path, splits: Path, model: str, crop: int, batch: int, augment: bool, workers: int,
            device: torch.device, out: Path):
    dataset = load_dataset(manifest)
    config = job_config({"name": model, "min_size": crop, "max_size": crop, "tile_size": crop, "tile_overlap": 384},
                        {"batch_size": batch, "augment": augment, "freeze": "none", "epochs": 100}, "input")
    job, _ = prepare_job(dataset, read_splits(splits, dataset), Strategy("ls"), config, out, device,
                         loader_workers=workers)
    return job


def deliver(job, epochs: int) -> dict[str, float]:
    """Iterate ``epochs`` epochs of the job's loader; crops/s, crops/CPU-s, seconds to the first batch."""
    crops, first = 0, None
    wall, cpu = time.perf_counter(), cpu_seconds()
    for epoch in range(epochs):
        job.batches.set_epoch(epoch, epoch_order(job.settings["seed"], epoch, job.train_ids))
        for images, _ in job.loader:
            crops += len(images)
            if first is None:
                first = time.perf_counter() - wall
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"crops": crops, "crops_per_s": crops / wall, "crops_per_cpu_s": crops / max(cpu, 1e-6), "first_batch_s": first,
            "wall_s": wall, "cpu_s": cpu}


def step_seconds(job, steps: int) -> tuple[float, float]:
    """(best seconds, peak device memory in MB or 0) of a training step on the job's first batch."""
    torch.manual_seed(epoch_seed(job.settings["seed"], 0))
    batch = job.batch(0, job.train_ids[:job.settings["batch_size"]])
    job.model.train()
    times = []
    if job.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(steps + 1):  # the first is a warm-up (allocations, cuDNN's choice of algorithms)
        if job.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(job, *batch, Progress())
        if job.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if job.device.type == "cuda" else 0.0
    return min(times[1:]), peak


def workers_needed(step_s: float, batch: int, per_worker: float) -> int:
    """Workers (a core each) that deliver ``batch`` crops per ``step_s`` seconds."""
    return math.ceil(batch / step_s / per_worker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (one crop per image per epoch)")
    parser.add_argument("--size", default="x".join(map(str, MULTIORG)), help="WIDTHxHEIGHT")
    parser.add_argument("--crop", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--augment", choices=["on", "off", "both"], default="both")
    parser.add_argument("--compression", default=None, help="TIFF compression (e.g. zlib); default: none")
    parser.add_argument("--model", default="goat", help="the model whose training step is timed")
    parser.add_argument("--steps", type=int, default=1, help="timed training steps (after one warm-up)")
    parser.add_argument("--step-seconds", type=float, default=None,
                        help="skip timing the step; use this step time (seconds per batch) instead")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder from large_tiffs.write_large_dataset to read (default: written to a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--table", type=Path, default=None, help="also write the table (Markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    width, height = (int(v) for v in args.size.lower().split("x"))
    augments = {"on": [True], "off": [False], "both": [False, True]}[args.augment]
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    results: dict = {"runs": [], "step": None}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.data is not None:
            manifest, splits = args.data / "ds" / "dataset.yaml", args.data / "splits.json"
        else:
            manifest, splits = write_large_dataset(root, args.images, width, height, val=1,
                                                   compression=args.compression, val_size=(512, 512))
        dataset = load_dataset(manifest)
        train_ids = read_splits(splits, dataset)["train"]
        first = dataset.images[train_ids[0]]
        layout = f", {args.compression or 'uncompressed'}" if args.data is None else ""
        header = (f"{len(train_ids)} images of {first.width} x {first.height} px, 16-bit{layout} TIFF; {args.crop} px crops, "
                  f"batch {args.batch_size}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
                  f"step: {args.model} on {where}")
        print(header, flush=True)
        results["header"] = header
        for augment in augments:
            for workers in args.workers:
                job = job_for(manifest, splits, args.model, args.crop, args.batch_size, augment, workers, device,
                              root / "m")
                run = {"workers": workers, "augment": augment, **deliver(job, args.epochs)}
                results["runs"].append(run)
                print(f"  augment {'on ' if augment else 'off'} workers {workers}: {run['crops_per_s']:.2f} crops/s, "
                      f"{run['crops_per_cpu_s']:.2f} crops/CPU-s, first batch after {run['first_batch_s']:.1f} s",
                      flush=True)
                del job
        if args.step_seconds is None:
            job = job_for(manifest, splits, args.model, args.crop, args.batch_size, False, 0, device, root / "m")
            seconds, peak = step_seconds(job, args.steps)
            results["step"] = {"model": args.model, "seconds": seconds, "measured": True, "peak_device_mb": peak,
                               "where": where}
        else:
            results["step"] = {"model": args.model, "seconds": args.step_seconds, "measured": False,
                               "peak_device_mb": 0.0, "where": "given"}
    step = results["step"]
    step_rate = args.batch_size / step["seconds"]
    print(f"  training step ({step['model']}, batch {args.batch_size} of {args.crop} px, {step['where']}): "
          f"{step['seconds']:.2f} s = {step_rate:.2f} crops/s" + ("" if step["measured"] else " (given)"))
    lines = ["| augment | workers | crops/s | crops/CPU-s | first batch (s) | step needs (crops/s) | "
             "workers needed |", "|---|---|---|---|---|---|---|"]
    for augment in augments:
        runs = [r for r in results["runs"] if r["augment"] == augment]
        # one worker's rate with a core of its own: the 1-worker run's crops per CPU second
        one = next((r for r in runs if r["workers"] == 1), runs[0])["crops_per_cpu_s"]
        results.setdefault("workers_needed", {})["on" if augment else "off"] = workers_needed(
            step["seconds"], args.batch_size, one)
        for r in runs:
            lines.append(f"| {'on' if augment else 'off'} | {r['workers']} | {r['crops_per_s']:.2f} | "
                         f"{r['crops_per_cpu_s']:.2f} | {r['first_batch_s']:.1f} | {step_rate:.2f} | "
                         f"{results['workers_needed']['on' if augment else 'off']} |")
    table = "\n".join(lines)
    print(table)
    if args.table:
        args.table.write_text(f"{header}\n\n{table}\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
