"""What ``resources.reproducible: true`` (multirater.core.kernels.REPRODUCIBLE_KERNELS) buys and costs.

``equality``: a small deterministic chain (synthetic data, the tiny detector trained a few epochs, its test
predictions, their evaluation), each step a real ``multirater`` process, under four environments:

- native: this machine's own dispatch;
- lower: a machine whose top capability is AVX2, emulated from outside by lowering every library's own
  dispatch switch (ATen, oneDNN, MKL's instruction set, numpy's SIMD, numpy's OpenBLAS);
- native, pinned and lower, pinned: the same two with the pin (which overrides what it pins).

It prints a digest of the trained weights, the detections and the metrics of each, and whether they are
equal bit for bit. The emulation lowers the same switches the pin sets, so it shows that nothing else in the
chain (numpy, OpenBLAS, MKL's instruction set) reads the machine's top capability; it cannot emulate another
vendor's CPU (MKL's and oneDNN's Intel- and AMD-specific code paths, cache-size-dependent blocking).

``cost``: CPU time per training image of our training epoch (multirater.training.loop.train_one_epoch), one
worker process per environment (the pin must be set before torch loads), epochs alternating between the
workers so machine load hits all alike; every epoch starts from the same weights. The ratio pinned / native
is the cost.

    python benchmarks/bench_reproducible.py equality            # tiny model, 96 px, 1 thread
    python benchmarks/bench_reproducible.py equality --epochs 12 --images 32 --size 128 --each
    python benchmarks/bench_reproducible.py cost                # tiny model, 256 px, 1 thread
    python benchmarks/bench_reproducible.py cost --model resnet18_fpn --size 256
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from multirater.core.kernels import REPRODUCIBLE_KERNELS  # noqa: E402  (torch-free)

# An AVX2-only machine, as far as each library's own dispatch goes.
LOWER = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
}
ENVIRONMENTS = {
    "native": {},
    "lower": LOWER,
    "native, pinned": REPRODUCIBLE_KERNELS,
    "lower, pinned": {**LOWER, **REPRODUCIBLE_KERNELS},
}


def child_env(extra: dict[str, str], threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {*LOWER, *REPRODUCIBLE_KERNELS}}
    bin_dir = str(Path(sys.executable).parent)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(REPO / "workflow"),
            "OMP_NUM_THREADS": str(threads), **extra}


def run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def digest(data: object) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def weights_digest(checkpoint: Path) -> str:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("model", state)
    h = hashlib.sha1()
    for name in sorted(state):
        if hasattr(state[name], "numpy"):
            h.update(name.encode())
            h.update(state[name].numpy().tobytes())
    return h.hexdigest()[:12]


def chain(root: Path, name: str, extra: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    """Train, predict and evaluate in ``root/<name>`` under ``extra``; the digests and the headline metrics."""
    out = root / name.replace(", ", "-")
    env = child_env(extra, args.threads)
    device = ["--device", "cpu", "--threads", str(args.threads)]
    run(["multirater", "train", "--dataset", "data/dataset.yaml", "--splits", "splits.json", "--strategy", "ls",
         "--config", "config.yaml", "--out", str(out / "model"), *device], env, root)
    run(["multirater", "predict", "--model", str(out / "model"), "--dataset", "data/dataset.yaml", "--splits",
         "splits.json", "--images", "test", "--out", str(out / "test.json"), *device], env, root)
    run(["multirater", "evaluate", "--gt", "data/consensus.json", "--pred", str(out / "test.json"), "--out",
         str(out / "metrics.json"), "--bootstrap", "20"], env, root)
    detections = json.loads((out / "test.json").read_text())["detections"]
    metrics = json.loads((out / "metrics.json").read_text())
    # the files also name their own paths, which differ by run: compare the numbers
    numbers = {k: metrics[k] for k in ("n_detections", "metrics", "reliability", "dece_reference")}
    headline = {f"{m['metric']}" + (f"@{m['iou']}" if m["iou"] is not None else ""): m["value"]
                for m in metrics["metrics"] if m["metric"] in ("mAP", "D-ECE")}
    return {"weights": weights_digest(out / "model" / "best.pt"), "detections": digest(detections),
            "metrics": digest(numbers), "headline": headline, "scores": [d["score"] for d in detections],
            "values": [m["value"] for m in metrics["metrics"]]}


def largest_difference(a: list[float], b: list[float]) -> str:
    """The largest absolute difference between two lists of numbers, or why there is none."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} values"
    return f"{max((abs(x - y) for x, y in zip(a, b)), default=0.0):.2g}"


def equality(args: argparse.Namespace) -> int:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = child_env({}, args.threads)
        run(["multirater", "synth", "--out", "data", "--seed", "3", "--images", str(args.images),
             "--consensus-images", "4", "--size", str(args.size)], env, root)
        run(["multirater", "split", "--dataset", "data/dataset.yaml", "--out", "splits.json", "--val-fraction",
             "0.25", "--seed", "1"], env, root)
        (root / "workflow.yaml").write_text(yaml.safe_dump({
            "model": {"name": args.model, "min_size": args.size, "max_size": args.size},
            "training": {"epochs": args.epochs, "patience": args.epochs, "batch_size": 4, "augment": False,
                         "freeze": "none"}}))
        run(["multirater", "sweep", "--config", "workflow.yaml", "--out", "configs.tsv", "--config-dir", "configs"],
            env, root)
        config = next(p for p in (root / "configs").glob("*.yaml") if p.name != "pretrain.yaml")
        (root / "config.yaml").write_text(config.read_text())
        print(f"model {args.model} ({args.epochs} epochs from scratch, {args.images} images of {args.size} px), "
              f"{args.threads} thread(s); pin: {' '.join(f'{k}={v}' for k, v in REPRODUCIBLE_KERNELS.items())}")
        print(f"lower (emulated AVX2 machine): {' '.join(f'{k}={v!r}' for k, v in LOWER.items())}")
        environments = dict(ENVIRONMENTS)
        if args.each:  # which library's dispatch matters: native against each switch of LOWER alone
            environments = {"native": {}, **{f"lower {k} only": {k: v} for k, v in LOWER.items()}}
        results = {}
        for name, extra in environments.items():
            results[name] = chain(root, name, extra, args)
            r = results[name]
            shown = ", ".join(f"{k} {v:.6f}" for k, v in r["headline"].items())
            print(f"  {name:32s} weights {r['weights']}  detections {r['detections']}  metrics {r['metrics']}"
                  f"   {shown}")
        pairs = [("native", name) for name in environments if name.endswith(" only")] if args.each else [
            ("native", "lower"), ("native, pinned", "lower, pinned"), ("native", "native, pinned")]
        for a, b in pairs:
            same = {k: results[a][k] == results[b][k] for k in ("weights", "detections", "metrics")}
            scores = largest_difference(results[a]["scores"], results[b]["scores"])
            values = largest_difference(results[a]["values"], results[b]["values"])
            print(f"  {a} vs {b}: " + ", ".join(f"{k} {'equal' if v else 'DIFFERENT'}" for k, v in same.items())
                  + f"; largest difference of a detection score {scores}, of a metric {values}")
    return 0


# --- cost: one worker per environment, epochs alternating ---------------------------------------------------
def worker(args: argparse.Namespace) -> int:
    """Build the job once, then on each line of stdin run one epoch from the same start; print its CPU seconds
    per image (and torch's dispatch, first)."""
    import copy
    import time

    import torch

    from multirater.data.dataset import load_dataset
    from multirater.training.commands import parse_strategy
    from multirater.training.job import prepare_job
    from multirater.training.loop import train_one_epoch
    from multirater.training.progress import Progress
    from multirater.training.settings import validate_model, validate_training

    torch.set_num_threads(args.threads)
    dataset = load_dataset(Path(args.worker) / "ds" / "dataset.yaml")
    ids = dataset.rater_image_ids
    config = {"model": validate_model({"name": args.model, "min_size": args.size, "max_size": args.size}),
              "training": validate_training({"batch_size": 2, "freeze": "none", "augment": False, "amp": False,
                                             "epochs": 10**6, "patience": 0}),
              "config_id": "bench"}
    job, _ = prepare_job(dataset, {"train": ids, "val": ids[:1], "test": []},
                         parse_strategy("ls", dataset.rater_names), config,
                         Path(args.worker) / f"model-{os.getpid()}", torch.device("cpu"))
    start_model, start_optimizer = copy.deepcopy(job.model.state_dict()), copy.deepcopy(job.optimizer.state_dict())
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
    for _ in sys.stdin:
        job.model.load_state_dict(start_model)
        job.optimizer.load_state_dict(start_optimizer)
        cpu = time.process_time()
        train_one_epoch(job, Progress())
        print(json.dumps({"cpu_per_image": (time.process_time() - cpu) / len(ids)}), flush=True)
    return 0


def cost(args: argparse.Namespace) -> int:
    from multirater.data.synthetic import generate

    variants = {"native": {}, "pinned": REPRODUCIBLE_KERNELS}
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", seed=0, images=args.images, consensus_images=0, raters=2, size=args.size)
        workers = {}
        for name, extra in variants.items():
            workers[name] = subprocess.Popen(
                [sys.executable, __file__, "cost", "--worker", tmp, "--model", args.model, "--size", str(args.size),
                 "--images", str(args.images), "--threads", str(args.threads)],
                env=child_env(extra, args.threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        capability = {n: json.loads(w.stdout.readline())["capability"] for n, w in workers.items()}
        print(f"model {args.model}, {args.images} images of {args.size} px, batch 2, {args.threads} thread(s), "
              f"{args.rounds} epochs each after one warm-up; torch dispatch: "
              + ", ".join(f"{n} {c}" for n, c in capability.items()))
        times: dict[str, list[float]] = {n: [] for n in variants}

        def epoch(name: str) -> float:
            workers[name].stdin.write("epoch\n")
            workers[name].stdin.flush()
            return json.loads(workers[name].stdout.readline())["cpu_per_image"]

        for name in variants:
            epoch(name)  # warm-up: image decoding, oneDNN's JIT, allocator
        for r in range(args.rounds):
            for name in (variants if r % 2 == 0 else list(variants)[::-1]):
                times[name].append(epoch(name))
        for w in workers.values():
            w.stdin.close()
            w.wait()
    for name, values in times.items():
        print(f"  {name:7s} CPU s per training image: best {min(values):.4f}, median {statistics.median(values):.4f}")
    best = min(times["pinned"]) / min(times["native"])
    median = statistics.median(times["pinned"]) / statistics.median(times["native"])
    print(f"  pinned / native: {best:.3f} (best epochs), {median:.3f} (medians)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["equality", "cost"])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--size", type=int, default=None, help="image size (equality: 96, cost: 256)")
    parser.add_argument("--images", type=int, default=None, help="images (equality: 12, cost: 16)")
    parser.add_argument("--epochs", type=int, default=3, help="equality: training epochs")
    parser.add_argument("--each", action="store_true",
                        help="equality: instead, native against each library's switch lowered alone")
    parser.add_argument("--rounds", type=int, default=7, help="cost: epochs measured per environment")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "equality":
        args.size, args.images = args.size or 96, args.images or 12
        return equality(args)
    args.size, args.images = args.size or 256, args.images or 16
    return worker(args) if args.worker else cost(args)


if __name__ == "__main__":
    sys.exit(main())
