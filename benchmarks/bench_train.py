"""Training throughput: our training epoch (loop.train_one_epoch: cached images, label choice, lr schedule,
loss checks, optional augmentation) vs a plain torchvision loop on the same model, data and settings.

Every measured epoch starts both from the same weights, optimizer state and random state, with the
same images and labels in the same order (strategy rs-rater1), so both do the same arithmetic; epochs
of the two alternate, so machine load hits both alike. The ratio is
ours / plain in images per second (target >= 0.95 on CPU). The data loader alone (our batches: cached
images, this epoch's labels, augmentation, the copy to the device; no model) is timed in the same rounds:
it shows how much of an epoch is data and whether it could starve a GPU.

    python benchmarks/bench_train.py                        # tiny model, 256 px, CPU, 1 thread
    python benchmarks/bench_train.py --model resnet34_fpn --size 512 --device cuda   # GPU, AMP on and off

``--json PATH`` also writes the figures and the peak memory of each case (on CUDA the peak GPU memory
torch allocated, ``torch.cuda.max_memory_allocated``; on the CPU the process's peak resident memory).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from multirater.data.dataset import load_dataset
from multirater.data.synthetic import generate
from multirater.training.commands import parse_strategy
from multirater.training.job import prepare_job
from multirater.training.labels import epoch_order
from multirater.training.loop import epoch_seed, train_one_epoch
from multirater.training.progress import Progress
from multirater.training.settings import validate_model, validate_training


def plain_epoch(model, optimizer, images, targets, batch_size, device, amp, scaler) -> None:
    """The torchvision reference loop: forward, sum the losses, backward, step."""
    model.train()
    for start in range(0, len(images), batch_size):
        imgs = [im.to(device) for im in images[start:start + batch_size]]
        tgts = [{k: v.to(device) for k, v in t.items()} for t in targets[start:start + batch_size]]
        with torch.autocast(device.type, enabled=amp):
            loss = sum(model(imgs, tgts).values())
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()


def rates(n: int, wall_start: float, cpu_start: float) -> tuple[float, float]:
    """Images per wall-clock second and per CPU second of this process (the latter is what to compare
    on a shared machine: other people's jobs steal wall time, not our CPU time)."""
    return n / (time.perf_counter() - wall_start), n / (time.process_time() - cpu_start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args: argparse.Namespace, root: Path, amp: bool, augment: bool) -> dict[str, tuple[float, float]]:
    device = torch.device(args.device)
    dataset = load_dataset(root / "ds" / "dataset.yaml")
    ids = dataset.rater_image_ids
    splits = {"train": ids, "val": ids[:1], "test": []}
    config = {
        "model": validate_model({"name": args.model, "min_size": args.size, "max_size": args.size}),
        "training": validate_training({"batch_size": args.batch_size, "freeze": "none", "augment": augment,
                                       "amp": amp, "epochs": 10**6, "patience": 0}),
        "config_id": "bench",
    }
    ours, _ = prepare_job(dataset, splits, parse_strategy("rs-rater1", dataset.rater_names), config,
                          root / "model", device)
    # The plain loop: its own copy of the same model and an identical optimizer, the same
    # (pre-decoded) images and labels, in the same order as our epoch 0.
    model = copy.deepcopy(ours.model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config["training"]["lr"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    order = epoch_order(config["training"]["seed"], 0, ids)
    images = [ours.images[i] for i in order]
    targets = [ours.targets.get(["rater1"], i) for i in order]
    n = len(ids)
    # Every measured epoch starts both loops from these same weights, optimizer state and random
    # state, so both do exactly the same arithmetic and the difference is pure overhead.
    start_model = copy.deepcopy(ours.model.state_dict())
    start_optimizer = copy.deepcopy(ours.optimizer.state_dict())

    def run_ours() -> float:
        ours.model.load_state_dict(start_model)
        ours.optimizer.load_state_dict(start_optimizer)
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        train_one_epoch(ours, Progress())  # epoch 0 from its first step
        sync(device)
        return rates(n, t, c)

    def run_plain() -> float:
        model.load_state_dict(start_model)
        optimizer.load_state_dict(start_optimizer)
        torch.manual_seed(epoch_seed(config["training"]["seed"], 0))
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        plain_epoch(model, optimizer, images, targets, args.batch_size, device, amp and device.type == "cuda", scaler)
        sync(device)
        return rates(n, t, c)

    def run_data() -> tuple[float, float]:
        # our epoch's batches exactly as train_one_epoch draws them, without the model
        torch.manual_seed(epoch_seed(config["training"]["seed"], 0))
        batch_size = config["training"]["batch_size"]
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        for start in range(0, n, batch_size):
            ours.batch(0, order[start:start + batch_size])
        sync(device)
        return rates(n, t, c)

    run_ours(), run_plain()  # warm-up (and image decoding, which the cache does once per job)
    ours_rates, plain_rates, data_rates = [], [], []
    for r in range(args.rounds):
        # alternate which goes first, so slow drifts in machine load cancel
        if r % 2 == 0:
            ours_rates.append(run_ours())
            plain_rates.append(run_plain())
        else:
            plain_rates.append(run_plain())
            ours_rates.append(run_ours())
        data_rates.append(run_data())
    if not augment:
        # Proof that both did the same work: after an epoch from the same start, the same weights.
        a, b = ours.model.state_dict(), model.state_dict()
        same = all(torch.equal(a[k], b[k]) for k in a)
        print(f"  identical weights after the last epoch of each loop: {same}")
    pick = 0 if device.type == "cuda" else 1  # wall time on a GPU, CPU time on the CPU
    # Interference from other jobs only ever slows an epoch down, so the best epoch of each loop is
    # the least noisy figure; the median is shown beside it.
    return {
        "best": (max(r[pick] for r in ours_rates), max(r[pick] for r in plain_rates)),
        "median": (statistics.median(r[pick] for r in ours_rates), statistics.median(r[pick] for r in plain_rates)),
        "wall": (statistics.median(r[0] for r in ours_rates), statistics.median(r[0] for r in plain_rates)),
        "data": (max(r[pick] for r in data_rates), statistics.median(r[pick] for r in data_rates)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="epochs measured per loop")
    parser.add_argument("--threads", type=int, default=1, help="1 by default: stable figures on a shared machine")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    gpu = f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""
    print(f"model {args.model}, {args.images} images of {args.size} px, batch {args.batch_size}, "
          f"device {args.device}{gpu}{'' if args.device == 'cuda' else f', {args.threads} threads'}, "
          f"{args.rounds} epochs each")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "ds", seed=0, images=args.images, consensus_images=0, raters=2, size=args.size)
        cases = [(False, False), (False, True)] if args.device == "cpu" else [(False, False), (True, False)]
        report = {"model": args.model, "size": args.size, "images": args.images, "batch_size": args.batch_size,
                  "device": args.device + gpu, "cases": []}
        for amp, augment in cases:
            print(f"amp={'on' if amp else 'off'} augment={'on' if augment else 'off'}"
                  + ("  (augmentation is extra work: reference only)" if augment else ""))
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            figures = measure(args, root, amp, augment)
            unit = "img/s" if args.device == "cuda" else "img/CPU-s"
            peak = (torch.cuda.max_memory_allocated() if args.device == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
            report["cases"].append({"amp": amp, "augment": augment, "unit": unit, "peak_mb": peak,
                                    **{k: list(v) for k, v in figures.items()}})
            print(f"  peak {'GPU memory (allocated)' if args.device == 'cuda' else 'resident memory'}: {peak:.0f} MB")
            data_best, data_median = figures.pop("data")
            for name, (ours, plain) in figures.items():
                shown = "img/s wall clock, median" if name == "wall" else f"{unit}, {name} epoch"
                print(f"  {shown:28s} ours {ours:7.2f}   plain torchvision loop {plain:7.2f}   ratio {ours / plain:.3f}")
            print(f"  {unit + ', data loader alone':28s} best {data_best:7.1f}   median {data_median:7.1f}"
                  f"   (our batches, no model)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
