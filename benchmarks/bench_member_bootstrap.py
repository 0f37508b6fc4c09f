"""The cost of the two-level bootstrap (members and images) at the paper's scale, against today's evaluation.

Workload (issue 24, item 4): the paper's pool, 20 label-sampling models and 10 rater-specific models per rater
(2 raters), on 20 images of 2048 px with 60 organoids each, each model with about 1000 detections per image:
bench_fusion_scale.py's ``clustered`` detector outputs (most boxes low-score, around the organoids), the
organoids as the ground truth. 100 bootstrap resamples, ensembles of size S (default 10: LSE_10 = 10 of the
20 LS models, RSE_10 = 5 of each rater's 10).

- Today's evaluation of LSE_S and RSE_S: ``evaluate`` of each fused ensemble with 100 image resamples and the
  default D-ECE reference (what ``multirater evaluate`` does in the workflow); the fusion of the two ensembles
  is timed beside it (the ensembles stage).
- The member bootstrap: ``member_bootstrap`` for size S, ``--member-draws`` member sets per ensemble (every
  distinct one fused and evaluated on its resamples), the detections already in memory.
- A wider baseline: today's evaluation of every pool model on its own (``evaluate``, 100 resamples), which the
  workflow runs for every model, beside the two ensembles.

Both run in this process, one after the other, best of ``--repeat``; the ratio of their CPU times (user +
system of this process) is the figure: less sensitive than wall time to other work on the machine. Then each
runs as a whole process on the same files (``multirater member-bootstrap`` against two ``multirater
evaluate``), for its wall time, CPU time and peak resident memory.

Run: ``.venv/bin/python benchmarks/bench_member_bootstrap.py [--size 10] [--member-draws 10] [--folder DIR]``
(generating the 40 models' files takes about a minute; ``--folder`` keeps them for the next run).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fusion_scale import N_IMAGES, SIZE, clustered_models, organoid_boxes  # noqa: E402
from whole_process import measure  # noqa: E402

from multirater.core.fusion import fuse  # noqa: E402
from multirater.evaluation.evaluate import evaluate  # noqa: E402
from multirater.evaluation.member_bootstrap import member_bootstrap  # noqa: E402
from multirater.io.detections import read_detections, write_detections  # noqa: E402
from multirater.selection.members import build_members  # noqa: E402
from multirater.selection.pool import build_pool  # noqa: E402
from multirater.selection.ranking import rank_models  # noqa: E402

POOL = {"ls": 20, "rs-rater1": 10, "rs-rater2": 10}
BOOTSTRAP = 100
TARGET_RATIO = 2.0


def write_workload(folder: Path, seed: int = 0) -> None:
    """The ground truth and every pool model's detections file (``<strategy>/<config_id>.json``), the
    selection rows and the pool file."""
    rng = np.random.default_rng(seed)
    organoids = organoid_boxes(rng)
    images = [{"id": i, "file_name": f"{i}.png", "width": SIZE, "height": SIZE} for i in range(1, N_IMAGES + 1)]
    anns = [{"id": 1000 * i + k + 1, "image_id": i, "category_id": 1, "bbox": box.tolist(),
             "area": float(box[2] * box[3]), "iscrowd": 0}
            for i, boxes in enumerate(organoids, start=1) for k, box in enumerate(boxes)]
    (folder / "gt.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                "categories": [{"id": 1, "name": "organoid"}]}))
    models = clustered_models(organoids, sum(POOL.values()), rng)
    statuses = []
    for strategy, n in POOL.items():
        for k in range(n):
            cid = f"{len(statuses):08x}"
            statuses.append({"strategy": strategy, "config_id": cid, "status": "ok", "best_val_map": 1.0 - k / 100})
            model = models[len(statuses) - 1]
            model.meta = {"identity": {"strategy": strategy, "config_id": cid}}
            write_detections(folder / "predictions" / strategy / f"{cid}.json", model)
    rows = rank_models(statuses, top_ls=POOL["ls"], top_rs=POOL["rs-rater1"])
    (folder / "rows.json").write_text(json.dumps(rows))
    (folder / "pool.json").write_text(json.dumps(build_pool(rows, 1, folder / "predictions")))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall and best CPU seconds of ``repeat`` calls, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_seconds()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return min(walls), min(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10, help="ensemble size S (even, at most 20)")
    parser.add_argument("--member-draws", type=int, nargs="+", default=[10],
                        help="member draws per ensemble, one measurement each (the whole process: the first)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None, help="keep the generated files here (reused)")
    parser.add_argument("--no-processes", action="store_true", help="skip the whole-process runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "pool.json").is_file():
            start = time.perf_counter()
            write_workload(folder)
            print(f"generated in {time.perf_counter() - start:.0f} s: {folder}")
        gt = json.loads((folder / "gt.json").read_text())
        pool = json.loads((folder / "pool.json").read_text())
        rows = json.loads((folder / "rows.json").read_text())
        cache = {rep["detections"]: read_detections(rep["detections"])
                 for m in pool["models"] for rep in m["replicates"]}
        n_boxes = sum(len(d) for d in cache.values())
        print(f"pool: {len(cache)} models ({', '.join(f'{s} {n}' for s, n in POOL.items())}), {N_IMAGES} images, "
              f"{n_boxes} boxes ({n_boxes / len(cache) / N_IMAGES:.0f} per model and image); size {args.size}, "
              f"{BOOTSTRAP} resamples")

        members = {kind: build_members(rows, kind, args.size, folder / "predictions")["members"]
                   for kind in ("lse", "rse")}
        fused_paths = {}
        fuse_wall = fuse_cpu = 0.0
        fused = {}
        for kind, listed in members.items():
            wall, cpu, fused[kind] = timed(lambda: fuse([cache[m["detections"]] for m in listed],
                                                        sources=[m["source"] for m in listed]), 1)
            fuse_wall, fuse_cpu = fuse_wall + wall, fuse_cpu + cpu
            fused_paths[kind] = folder / f"fused_{kind}_{args.size}.json"
            write_detections(fused_paths[kind], fused[kind])

        def today():
            return [evaluate(gt, fused[kind], bootstrap=BOOTSTRAP, seed=0) for kind in ("lse", "rse")]

        def two_level(draws):
            return lambda: member_bootstrap(gt, pool, args.size, lambda path, s, i: cache[path], bootstrap=BOOTSTRAP,
                                            seed=0, member_draws=draws)

        base_wall, base_cpu, _ = timed(today, args.repeat)
        singles_wall, singles_cpu, _ = timed(
            lambda: [evaluate(gt, model, bootstrap=BOOTSTRAP, seed=0) for model in cache.values()], 1)
        print(f"fusing LSE_{args.size} and RSE_{args.size} (ensembles stage)   {fuse_wall:6.2f} s  "
              f"CPU {fuse_cpu:6.2f} s")
        print(f"today's evaluation of both (100 resamples) {base_wall:6.2f} s  CPU {base_cpu:6.2f} s")
        print(f"today's evaluation of the pool's {len(cache)} models    {singles_wall:6.2f} s  "
              f"CPU {singles_cpu:6.2f} s")
        for draws in args.member_draws:
            new_wall, new_cpu, result = timed(two_level(draws), args.repeat)
            sets = sum(r["fused_sets"] for r in result["ensembles"])
            ratio = new_cpu / base_cpu
            print(f"member bootstrap, {draws:3d} draws ({sets:3d} member sets) {new_wall:6.2f} s  CPU {new_cpu:6.2f} s"
                  f"  ratio (CPU) to today's evaluation {ratio:5.2f}x "
                  f"({'meets' if ratio <= TARGET_RATIO else 'misses'} {TARGET_RATIO:g}x), to fusion + evaluation "
                  f"{new_cpu / (base_cpu + fuse_cpu):5.2f}x, to the evaluation of the pool's models and both ensembles "
                  f"{new_cpu / (base_cpu + singles_cpu):5.2f}x")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of this process: {peak:.0f} MB")
        if args.no_processes:
            return

        entry = shutil.which("multirater", path=str(Path(sys.executable).parent)) or "multirater"
        evaluations = [measure([entry, "evaluate", "--gt", str(folder / "gt.json"), "--pred", str(fused_paths[kind]),
                                "--out", str(folder / f"metrics_{kind}.json")]) for kind in ("lse", "rse")]
        command = [entry, "member-bootstrap", "--gt", str(folder / "gt.json"), "--pool", str(folder / "pool.json"),
                   "--size", str(args.size), "--out", str(folder / "members.json"),
                   "--member-draws", str(args.member_draws[0])]
        ours = measure(command)
        base = (sum(r.wall for r in evaluations), sum(r.cpu for r in evaluations), max(r.peak_mb for r in evaluations))
        print(f"whole process: multirater evaluate x 2   {base[0]:6.2f} s  CPU {base[1]:6.2f} s  "
              f"peak {base[2]:5.0f} MB")
        print(f"whole process: multirater member-bootstrap {ours.wall:6.2f} s  CPU {ours.cpu:6.2f} s  peak "
              f"{ours.peak_mb:5.0f} MB  ratio (CPU) {ours.cpu / base[1]:.2f}x")


if __name__ == "__main__":
    main()
