"""Peak memory of `multirater train` as the number of training images grows (issue 20: at most +150 MB from 4 to
16 images of 4000 x 3600 px, 16-bit, trained in 512 px crops).

Each run is a fresh `multirater train` process (label sampling, 1 epoch, validation included) on the same
generated dataset (large_tiffs.py: uncompressed 16-bit TIFFs, two raters), only the training split differs.
It is started by a small launcher process, so that it inherits no memory from this one, and measured three ways:

- ``main``: the peak resident memory of the training process (the kernel's ``ru_maxrss`` from ``wait4``: exact,
  the largest of any one process of the tree);
- ``tree``: the largest sum, sampled every 0.1 s, of the training process's resident memory and its loader
  workers' private memory (pages a worker has of its own: those it shares with the training process since the
  fork are counted once, in the training process). That is what the tree holds, as a cgroup such as a SLURM
  job's counts it (page cache aside). Proportional set sizes (PSS) would be smaller and depend on other users
  of the machine: they split the pages of the shared libraries (torch's alone are hundreds of MB) among every
  process that maps them.

    python benchmarks/bench_train_memory.py                          # 4 and 16 images, 512 px, workers 0 and 2
    python benchmarks/bench_train_memory.py --code /other/checkout/workflow --workers none   # other code (before)
    python benchmarks/bench_train_memory.py --model goat --size 6390x5724 --images 4 --crops 512 1024 \\
        --batch-size 4 --val 1 --val-size 2048x2048 --workers 0      # the MultiOrg config's model, for mem_mb
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from large_tiffs import write_large_dataset, write_splits

# Runs the command, samples its tree's memory, prints one JSON line. Kept tiny: the command's ru_maxrss
# starts from what its parent held (see peak_memory.py).
LAUNCHER = r"""
import json, os, re, subprocess, sys, threading, time

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out

def field(path, name):
    try:
        with open(path) as f:
            m = re.search(rf"^{name}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0

start, cpu0 = time.perf_counter(), os.times()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=open(os.environ["BENCH_LOG"], "w"))
peaks, stop = {"tree": 0, "procs": 0}, threading.Event()

def private(pid):
    return field(f"/proc/{pid}/smaps_rollup", "Private_Clean") + field(f"/proc/{pid}/smaps_rollup", "Private_Dirty")

def watch():
    while not stop.is_set():
        main, *workers = tree(child.pid)
        peaks["tree"] = max(peaks["tree"], field(f"/proc/{main}/status", "VmRSS") + sum(map(private, workers)))
        peaks["procs"] = max(peaks["procs"], 1 + len(workers))
        stop.wait(0.1)

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
_, status, usage = os.wait4(child.pid, 0)
stop.set(); watcher.join()
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - start,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "main_mb": usage.ru_maxrss / 1024,
                  "tree_mb": peaks["tree"] / 1024, "processes": peaks["procs"]}))
"""


def measure(code: Path, manifest: Path, splits: Path, config: Path, out: Path, workers: int | None,
            threads: int) -> dict:
    """One `multirater train` run as a fresh process; its peaks, times and exit status."""
    command = [sys.executable, "-m", "multirater", "train", "--dataset", str(manifest), "--splits", str(splits),
               "--strategy", "ls", "--config", str(config), "--out", str(out), "--device", "cpu",
               "--threads", str(threads)]
    if workers is not None:
        command += ["--loader-workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads), "BENCH_LOG": str(out) + ".log"}
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, capture_output=True, text=True,
                            check=True)
    run = json.loads(result.stdout.splitlines()[-1])
    if run["exit"] != 0:
        sys.exit(f"multirater train exited {run['exit']}; see {out}.log:\n{Path(str(out) + '.log').read_text()[-2000:]}")
    status = json.loads((out / "status.json").read_text())["status"]
    if status != "ok":
        sys.exit(f"training ended {status}; see {out}.log")
    return run


def size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[4, 16], help="training images per run")
    parser.add_argument("--size", type=size, default=(4000, 3600), help="WIDTHxHEIGHT of the images")
    parser.add_argument("--crops", type=int, nargs="+", default=[512], help="training crop (tile) sizes")
    parser.add_argument("--workers", nargs="+", default=["0", "2"], help="loader workers per run; none: leave the "
                        "option out (code without it)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--val", type=int, default=2, help="validation images (the same in every run)")
    parser.add_argument("--val-size", type=size, default=None, help="WIDTHxHEIGHT of the validation images "
                        "(default: --size); each holds its objects in its top-left 1024 px when given")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent / "workflow",
                        help="the multirater package's parent folder to measure (PYTHONPATH)")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs here")
    args = parser.parse_args()
    workers = [None if w == "none" else int(w) for w in args.workers]
    width, height = args.size
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        most = max(args.images)
        region = (0, 0, *(min(v, 1024) for v in args.val_size)) if args.val_size else None
        manifest, _ = write_large_dataset(root, most, width, height, val=args.val, val_size=args.val_size,
                                          val_region=region)
        print(f"{most} training images of {width} x {height} px (16-bit, uncompressed TIFF), {args.val} validation "
              f"images of {'x'.join(map(str, args.val_size or args.size))}; model {args.model}, batch "
              f"{args.batch_size}, {args.threads} thread(s), 1 epoch; code {args.code}")
        print(f"{'images':>6} {'crop':>5} {'workers':>7} {'main MB':>8} {'tree MB':>8} {'wall s':>7} {'CPU s':>6}")
        for crop in args.crops:
            config = root / f"config_{crop}.yaml"
            config.write_text(yaml.safe_dump({
                "model": {"name": args.model, "min_size": crop, "max_size": crop, "tile_size": crop,
                          "tile_overlap": min(128, crop // 4)},
                "training": {"epochs": 1, "batch_size": args.batch_size, "patience": 0},
                "config_id": f"mem{crop}"}))
            for w in workers:
                for n in sorted(args.images):
                    splits = write_splits(root / f"splits_{n}.json", list(range(1, n + 1)),
                                          list(range(most + 1, most + args.val + 1)))
                    run = measure(args.code, manifest, splits, config, root / f"m_{crop}_{w}_{n}", w, args.threads)
                    run.update(images=n, crop=crop, workers=w)
                    runs.append(run)
                    print(f"{n:>6} {crop:>5} {str(w):>7} {run['main_mb']:>8.0f} {run['tree_mb']:>8.0f} "
                          f"{run['wall_s']:>7.1f} {run['cpu_s']:>6.1f}", flush=True)
    if len(args.images) > 1:
        low, high = min(args.images), max(args.images)
        print(f"growth from {low} to {high} training images:")
        for crop in args.crops:
            for w in workers:
                a, b = ([r for r in runs if r["crop"] == crop and r["workers"] == w and r["images"] == n][0]
                        for n in (low, high))
                print(f"  crop {crop}, workers {w}: main {b['main_mb'] - a['main_mb']:+.0f} MB, "
                      f"tree {b['tree_mb'] - a['tree_mb']:+.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
