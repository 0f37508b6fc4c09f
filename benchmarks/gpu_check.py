"""`make gpu-check`: everything the first run on a GPU node should measure, at once, in under 8 minutes, ending
with one summary table.

1. ``test-gpu``: the GPU tests (tests/gpu: AMP training, resume, CPU agreement, tiled prediction's memory);
2. ``bench_train``: bench_train.py on the device (images/s of our epoch and of a plain torchvision loop,
   peak GPU memory);
3. ``bench_input``: bench_input.py with the node's cores (crops/s delivered from MultiOrg-size TIFFs with
   0 .. cores-1 loader workers, the training step of the same batch, the workers a step needs);
4. ``train``: a short MultiOrg-shaped training (``multirater``'s run_training, as ``multirater train`` runs
   it): ``resnet50_fpn`` on 2048 px crops of 6390 x 5724 px 16-bit TIFFs, a few epochs, loader workers from
   the node's cores, AMP; seconds per epoch, the time the loop waited for data, the share of validation,
   peak GPU memory.

Each step runs as a process of its own with a time limit (a hung step cannot take the others with it) and
writes its figures as JSON into ``--out``; its output goes to ``--out/<step>.log``.

    python benchmarks/gpu_check.py                      # on the GPU (make gpu-check)
    python benchmarks/gpu_check.py --device cpu         # dry rehearsal on the CPU (make gpu-check DEVICE=cpu)
    python benchmarks/gpu_check.py --device cpu --smoke # the same steps on tiny inputs (tests/test_gpu_check.py)

The CPU rehearsal keeps every step and the MultiOrg-size images, but cannot train a ResNet-50 on 2048 px crops
in minutes: its bench_train uses the tiny model, its bench_input times the step of the tiny model, and its
training uses ``tiny`` on 512 px crops (the table says so). ``--smoke`` shrinks everything further.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# What each mode runs. gpu: the real check; cpu: the dry rehearsal; smoke: the rehearsal on tiny inputs.
PLANS = {
    "gpu": {
        "size": (6390, 5724), "train_images": 8, "val_images": 2, "val_size": None,
        "bench_train": ["--model", "resnet34_fpn", "--size", "512", "--images", "16", "--rounds", "3"],
        # 4 epochs of the 8 images: 32 crops a run, so that 15 workers are not all start-up
        "input": {"crop": 2048, "images": 8, "epochs": 4, "model": "resnet50_fpn", "steps": 3},
        "train": {"model": "resnet50_fpn", "crop": 2048, "epochs": 3, "batch_size": 2},
        # 450 s in all, plus about 20 s to write the images: under 8 minutes even if every step hits its limit
        "limits": {"test-gpu": 120, "bench_train": 60, "bench_input": 150, "train": 120},
    },
    "cpu": {
        "size": (6390, 5724), "train_images": 4, "val_images": 1, "val_size": (2048, 2048),
        "bench_train": ["--model", "tiny", "--size", "256", "--images", "8", "--rounds", "2"],
        "input": {"crop": 2048, "images": 4, "epochs": 1, "model": "tiny", "steps": 1},
        "train": {"model": "tiny", "crop": 512, "epochs": 2, "batch_size": 2},
        "limits": {"test-gpu": 120, "bench_train": 120, "bench_input": 180, "train": 150},
    },
    "smoke": {
        "size": (1200, 1000), "train_images": 2, "val_images": 1, "val_size": (512, 512),
        "bench_train": ["--model", "tiny", "--size", "128", "--images", "4", "--rounds", "1"],
        "input": {"crop": 256, "images": 2, "epochs": 1, "model": "tiny", "steps": 1},
        "train": {"model": "tiny", "crop": 256, "epochs": 2, "batch_size": 2},
        "limits": {"test-gpu": 120, "bench_train": 120, "bench_input": 120, "train": 120},
    },
}


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_step(name: str, command: list[str], out: Path, limit: int) -> dict:
    """Run one step; its status (ok, failed, timeout), seconds and CPU seconds; its output in out/<name>.log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "workflow"), str(HERE)])}
    start, cpu = time.perf_counter(), os.times()
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            code = None
    after = os.times()
    used = after.children_user + after.children_system - cpu.children_user - cpu.children_system
    status = "timeout" if code is None else ("ok" if code == 0 else f"failed (exit {code})")
    print(f"[gpu-check] {name}: {status} in {time.perf_counter() - start:.0f} s", flush=True)
    return {"status": status, "seconds": time.perf_counter() - start, "cpu_seconds": used}


def test_gpu(out: Path, limit: int) -> tuple[dict, str]:
    xml = out / "test-gpu.xml"
    step = run_step("test-gpu", [sys.executable, "-m", "pytest", "-m", "gpu", "-rs", "-q", "-p", "no:cacheprovider",
                                 f"--junitxml={xml}", "tests/gpu"], out, limit)
    if not xml.exists():
        return step, "no report"
    suite = ElementTree.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return step, f"{total - skipped - failed} passed, {failed} failed, {skipped} skipped"


def bench_train(out: Path, plan: dict, device: str, limit: int) -> tuple[dict, str]:
    path = out / "bench_train.json"
    step = run_step("bench_train", [sys.executable, str(HERE / "bench_train.py"), "--device", device,
                                    *plan["bench_train"], "--json", str(path)], out, limit)
    if not path.exists():
        return step, "no figures"
    report = json.loads(path.read_text())
    parts = []
    for case in report["cases"]:
        ours, plain = case["wall"]
        memory = "peak GPU memory" if device == "cuda" else "peak RSS"
        parts.append(f"amp {'on' if case['amp'] else 'off'}{', augment' if case['augment'] else ''}: {ours:.1f} img/s "
                     f"(plain loop {plain:.1f}), {memory} {case['peak_mb']:.0f} MB")
    return step, f"{report['model']} {report['size']} px: " + "; ".join(parts)


def bench_input(out: Path, plan: dict, device: str, data: Path, limit: int) -> tuple[dict, str]:
    path = out / "bench_input.json"
    spec, n = plan["input"], cores()
    workers = sorted({0, 1, 2, max(n - 1, 0), *(w for w in (4, 8) if w < n)})  # the node's cores, one for the step
    command = [sys.executable, str(HERE / "bench_input.py"), "--device", device, "--data", str(data),
               "--workers", *map(str, workers), "--crop", str(spec["crop"]), "--images", str(spec["images"]),
               "--epochs", str(spec["epochs"]), "--model", spec["model"], "--steps", str(spec["steps"]),
               "--json", str(path), "--table", str(out / "bench_input.md")]
    step = run_step("bench_input", command, out, limit)
    if not path.exists():
        return step, "no figures"
    report = json.loads(path.read_text())
    rates = ", ".join(f"{r['workers']}w {r['crops_per_s']:.1f}" for r in report["runs"] if r["augment"])
    s = report["step"]
    return step, (f"crops/s with augmentation: {rates}; step {s['model']} {s['seconds']:.2f} s/batch "
                  f"({2 / s['seconds']:.1f} crops/s) -> workers needed: {report['workers_needed']['on']} "
                  f"(augment off: {report['workers_needed']['off']})")


def train(out: Path, plan: dict, device: str, data: Path, limit: int) -> tuple[dict, str]:
    path = out / "train.json"
    spec = plan["train"]
    step = run_step("train", [sys.executable, __file__, "--train-step", str(path), "--device", device,
                              "--data", str(data), "--model", spec["model"], "--crop", str(spec["crop"]),
                              "--epochs", str(spec["epochs"]), "--batch-size", str(spec["batch_size"])],
                    out, limit)
    if not path.exists():
        return step, "no figures"
    r = json.loads(path.read_text())
    rows = r["rows"]
    if r["status"] != "ok" or not rows:
        step["status"] = f"failed ({r['status']})"
    train_s = sum(float(x["seconds"]) for x in rows)
    wait_s = sum(float(x["data_seconds"]) for x in rows)
    val_s = sum(float(x["val_seconds"]) for x in rows)
    steps = r["steps_per_epoch"] * len(rows)
    memory = f", peak GPU memory {r['peak_device_mb']:.0f} MB" if device == "cuda" else ""
    return step, (f"{spec['model']} on {spec['crop']} px crops, {len(rows)} epochs x {r['steps_per_epoch']} steps, "
                  f"{r['workers']} workers, amp {'on' if r['amp'] else 'off'}: {train_s / max(steps, 1):.2f} s/step, "
                  f"waited for data {wait_s:.1f} of {train_s:.1f} s; validation {val_s / len(rows):.1f} s/epoch "
                  f"({r['val_windows'][0]} of {r['val_windows'][1]} windows) = "
                  f"{100 * val_s / max(val_s + train_s, 1e-9):.0f} % of an epoch{memory}; last loss "
                  f"{float(rows[-1]['loss']):.3f}, status {r['status']}")


def train_step(args: argparse.Namespace) -> int:
    """The training step's own process: run_training on the MultiOrg-shaped data, then its figures as JSON."""
    import csv

    import torch

    from multirater.data.dataset import load_dataset
    from multirater.training.inputs import read_splits
    from multirater.training.job import prepare_job
    from multirater.training.labels import Strategy
    from multirater.training.loop import run_training
    from multirater.training.samples import default_loader_workers
    from multirater.training.settings import job_config
    from multirater.training.validation import validation_windows

    device = torch.device(args.device)
    torch.set_num_threads(1 if device.type == "cuda" else max(cores() - 1, 1))
    workers = default_loader_workers(cores(), device)
    dataset = load_dataset(args.data / "ds" / "dataset.yaml")
    splits = read_splits(args.data / "splits.json", dataset)
    config = job_config({"name": args.model, "min_size": args.crop, "max_size": args.crop, "tile_size": args.crop,
                         "tile_overlap": min(384, args.crop // 4)},
                        {"epochs": args.epochs, "batch_size": args.batch_size, "freeze": "none", "patience": 0,
                         "lr": 1e-4, "amp": True}, "gpu-check")
    out = args.train_step.parent / "train_model"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    code = run_training(dataset, splits, Strategy("ls"), config, out, device, log=sys.stdout, loader_workers=workers)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    job, _ = prepare_job(dataset, splits, Strategy("ls"), config, args.train_step.parent / "windows", torch.device("cpu"))
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    status = json.loads((out / "status.json").read_text())["status"] if (out / "status.json").exists() else "none"
    args.train_step.write_text(json.dumps({
        "exit": code, "status": status, "rows": rows, "workers": workers, "amp": device.type == "cuda",
        "steps_per_epoch": job.steps_per_epoch, "val_windows": validation_windows(job), "peak_device_mb": peak}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: checks that every step runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu-check")
    # the training step's own process (internal)
    parser.add_argument("--train-step", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--crop", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_step is not None:
        return train_step(args)
    sys.path[:0] = [str(ROOT / "workflow"), str(HERE)]
    mode = "smoke" if args.smoke else ("gpu" if args.device == "cuda" else "cpu")
    plan = PLANS[mode]
    args.out.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), os.times()
    load = os.getloadavg()[0]
    print(f"[gpu-check] mode {mode}, device {args.device}, {cores()} cores, load average {load:.1f}; "
          f"logs in {args.out}", flush=True)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu-check: no CUDA device is visible (make gpu-check DEVICE=cpu rehearses on the CPU)")
        print(f"[gpu-check] {torch.cuda.get_device_name()}", flush=True)
    data = args.out / "data"
    if not (data / "splits.json").exists():
        from large_tiffs import write_large_dataset

        write_large_dataset(data, plan["train_images"], *plan["size"], val=plan["val_images"],
                            val_size=plan["val_size"])
    print(f"[gpu-check] data: {plan['train_images']} + {plan['val_images']} images in {data} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    limits = plan["limits"]
    rows = [("test-gpu", *test_gpu(args.out, limits["test-gpu"])),
            ("bench_train", *bench_train(args.out, plan, args.device, limits["bench_train"])),
            ("bench_input", *bench_input(args.out, plan, args.device, data, limits["bench_input"])),
            ("train", *train(args.out, plan, args.device, data, limits["train"]))]
    wall = time.perf_counter() - start
    after = os.times()
    cpu_s = (after.user + after.system + after.children_user + after.children_system
             - cpu.user - cpu.system - cpu.children_user - cpu.children_system)
    lines = [f"gpu-check ({mode}, {args.device}, {cores()} cores, load average {load:.1f} at the start): "
             f"{wall:.0f} s wall, {cpu_s:.0f} s CPU", "",
             "| step | status | s | CPU s | figures |", "|---|---|---|---|---|"]
    for name, step, figures in rows:
        lines.append(f"| {name} | {step['status']} | {step['seconds']:.0f} | {step['cpu_seconds']:.0f} | {figures} |")
    table = "\n".join(lines)
    (args.out / "summary.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    return 0 if all(step["status"] == "ok" for _, step, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
