"""Regenerating the paper's figures from cached predictions: how long `snakemake figures` takes once every
model is trained and has predicted, and the peak memory of its largest job (issue 12, item 4).
Targets: at most 5 minutes on 2 cores, no job over 2 GB.

In a temporary folder holding a copy of the workflow (Snakefile, workflow/, config/, profiles/, envs/), with
config/paper.yaml on a synthetic dataset of the paper's size (80 multi-rater + 20 consensus images):
1. the cheap rules upstream of training run for real: synth, check, split, the agreement figures; the sweep's
   files (80 configurations: ls + rs-<rater> for 2 raters = 240 models) get the text rule sweep_file gives
   them, from the same functions, written at once (the rule makes each a Snakemake job of its own: minutes);
2. every model's status.json (ok, with a validation mAP) and its val and test detections are written as
   `multirater train` / `multirater predict` would (cached_outputs.py: 300-1000 NMS-ed detections per image
   at score floor 0.001, gathered around the true objects), with no checkpoint: the state after deleting them;
3. `snakemake --touch` marks training and prediction as done, and a dry run checks that `figures` now needs
   exactly the jobs after prediction: select, members, fuse, evaluate, tables, the figures;
4. `snakemake --profile profiles/local figures` (2 cores) is timed as a whole. Each job's peak memory comes
   from its `benchmark:` file (max_rss, sampled by Snakemake every 0.5 s); the kernel's exact peak of the
   largest process of the run (Snakemake included, whose own peak is shown beside it) checks it. The CPU
   time of the whole run (every job and Snakemake) / 2 is what the run would take on 2 otherwise idle cores,
   given perfect packing: the figure to compare when the machine is shared.

    python benchmarks/bench_cache.py                 # --scale paper: 240 models (generation takes minutes)
    python benchmarks/bench_cache.py --scale small   # 18 models, ensembles of 2 and 4: a quick check
    python benchmarks/bench_cache.py --keep DIR      # work in DIR (kept) instead of a temporary folder
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cached_outputs.py lies beside this file
from cached_outputs import read_splits_file, write_model_outputs  # noqa: E402

from multirater.config import SCHEMA_PATH  # noqa: E402
from multirater.workflow_config import load_workflow_config  # noqa: E402
from multirater.core.files import write_text  # noqa: E402
from multirater.data.dataset import load_dataset  # noqa: E402
from multirater.training.sweep import configs_tsv, training_config  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIMIT_S = 300.0  # 5 minutes
LIMIT_MB = 2048.0  # 2 GB per job
COPIED = ("Snakefile", "workflow", "config", "profiles", "envs")
# The rules `snakemake figures` may run once every prediction is cached; anything else is an error.
AFTER_PREDICTION = {"select", "members", "fuse", "evaluate_detections", "tables", "figure3", "figure4", "figures"}


@dataclass(frozen=True)
class Scale:
    images: int  # multi-rater images
    consensus: int  # consensus (test) images
    size: int  # image side, px
    detections: tuple[int, int]  # detections per image and model, drawn in this range
    overrides: dict = field(default_factory=dict)  # on top of config/paper.yaml


SCALES = {
    # The paper's design as config/paper.yaml has it. At 512 px, 1000 boxes per image are about 3x denser than on
    # the paper's 800 x 1067 px inputs (more overlap to fuse: a harder case), 256 px would make them 13x.
    "paper": Scale(images=80, consensus=20, size=512, detections=(300, 1000)),
    "small": Scale(images=24, consensus=6, size=256, detections=(300, 1000), overrides={
        "sweep": {"random": {"n": 6}}, "selection": {"ls": 4, "rs": 2}, "ensembles": {"sizes": [2, 4]}}),
}


def merged(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, recursively (as Snakemake merges --configfile files)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_config(work: Path, scale: Scale) -> Path:
    """config/paper.yaml on synthetic data, with an empty stand-in for the GOAT weights (no pretrain job)."""
    (work / "goat.bin").write_bytes(b"")
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config = merged(paper, {
        "dataset": {"manifest": None, "synthetic": {"seed": 0, "images": scale.images,
                                                    "consensus_images": scale.consensus, "size": scale.size}},
        "model": {"base_checkpoint": "goat.bin"},
        **scale.overrides,
    })
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(work: Path, config: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    """Snakemake in ``work`` on ``config``; exits with its output if it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--directory", str(work), "--configfile", str(config), *args]
    with open(log or os.devnull, "w") as sink:
        proc = subprocess.run(command, cwd=work, env=env, stdout=subprocess.PIPE if log is None else sink,
                              stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args[:4])} ... failed:\n{(proc.stdout or log.read_text())[-4000:]}")
    return proc


def build_upstream(work: Path, config: Path) -> None:
    """The real cheap rules before training: dataset, check, splits, agreement figures."""
    targets = ["results/data/check.txt", "results/data/splits.json",
               *(f"results/figures/{stem}.{ext}" for stem in ("fig1_rater_agreement", "fig2_interrater")
                 for ext in ("png", "pdf"))]
    snakemake(work, config, "--cores", "2", *targets, log=work / "setup.log")


def write_sweep_files(work: Path, checked: dict, configs: list[dict]) -> None:
    """results/sweep/ as rule sweep_file writes it: the texts of workflow/rules/common.smk's SWEEP_FILES (but
    pretrain.yaml, which no rule needs here: the base checkpoint is given)."""
    dump = lambda data: yaml.safe_dump(data, sort_keys=False)  # noqa: E731  (common.smk's _yaml)
    files = {"configs.tsv": configs_tsv(configs),
             **{f"configs/{c['config_id']}.yaml": dump(training_config(checked, c)) for c in configs}}
    for name, text in files.items():
        write_text(work / "results" / "sweep" / name, text)


def write_cached_models(work: Path, paper: dict, strategies: list[str], config_ids: list[str],
                        scale: Scale) -> int:
    """status.json and val/test detections of every model; returns the detections written."""
    results = work / "results"
    dataset = load_dataset(results / "data" / "synthetic" / "dataset.yaml")
    splits = read_splits_file(results / "data" / "splits.json")
    nms_iou = (paper.get("model") or {}).get("nms_thresh") or 0.4  # null: the goat model's box NMS, 0.4
    total = 0
    for strategy in strategies:
        for config_id in config_ids:
            total += write_model_outputs(results, dataset, splits, strategy, config_id, scale.detections, nms_iou,
                                         seed=paper["training"]["seed"])
    return total


def cached_targets(strategies: list[str], config_ids: list[str]) -> list[str]:
    """Every model's status.json and val/test detections files."""
    return [path for s in strategies for c in config_ids
            for path in (f"results/models/{s}/{c}/status.json", f"results/predictions/val/{s}/{c}.json",
                         f"results/predictions/test/{s}/{c}.json")]


def planned_jobs(work: Path, config: Path) -> dict[str, int]:
    """Jobs per rule of a dry run of `snakemake figures` (up to the members checkpoint)."""
    out = snakemake(work, config, "-n", "--cores", "2", "figures").stdout
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def timed_figures(work: Path, config: Path) -> dict[str, float]:
    """Wall and CPU seconds, the kernel's peak RSS (MB) of the largest process of the run and Snakemake's own
    peak of `snakemake --profile profiles/local figures`, launched by the small peak_memory.py (see there why)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, str(HERE / "peak_memory.py"), sys.executable, "-m", "snakemake",
               "--directory", str(work), "--configfile", str(config), "--profile", "profiles/local", "figures"]
    with open(work / "figures.log", "w") as log:
        proc = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.PIPE, text=True)
    measured = json.loads(proc.stderr.strip().splitlines()[-1])
    if measured["exit"] != 0:
        sys.exit(f"snakemake figures failed:\n{(work / 'figures.log').read_text()[-4000:]}")
    return measured


def rule_of(benchmark: Path) -> str:
    """The rule (and for evaluate, what it evaluated) a file under results/benchmarks/ measures."""
    parts = benchmark.parts
    if parts[0] == "evaluate":
        return f"evaluate ({parts[1]})"
    if parts[-1] in ("members.tsv", "fuse.tsv"):
        return benchmark.stem
    return parts[0].removesuffix(".tsv")


def job_benchmarks(work: Path) -> dict[str, list[tuple[float, float | None]]]:
    """(seconds, max_rss MB or None) of every job of the timed run, by rule."""
    root = work / "results" / "benchmarks"
    jobs: dict[str, list[tuple[float, float | None]]] = {}
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss = row.get("max_rss", "NA")
        jobs.setdefault(rule_of(path.relative_to(root)), []).append(
            (float(row["s"]), None if rss in ("NA", "-", "") else float(rss)))
    return jobs


def report(jobs: dict[str, list[tuple[float, float | None]]], measured: dict[str, float]) -> bool:
    """Print the table and the verdict; True when both targets are met."""
    wall, tree_peak, snakemake_peak = measured["wall_s"], measured["tree_peak_mb"], measured["own_peak_mb"]
    print(f"{'rule':22s} {'jobs':>5s} {'sum s':>8s} {'max s':>7s} {'max_rss MB':>11s}")
    largest = 0.0
    for rule in sorted(jobs):
        seconds = [s for s, _ in jobs[rule]]
        rss = [r for _, r in jobs[rule] if r is not None]
        largest = max([largest, *rss])
        print(f"{rule:22s} {len(seconds):5d} {sum(seconds):8.1f} {max(seconds):7.2f} "
              f"{max(rss) if rss else float('nan'):11.1f}")
    # The kernel's peak covers every process; when it is not Snakemake's own, it is the largest job's, exactly.
    job_peak = max(largest, tree_peak if tree_peak > snakemake_peak + 1 else 0.0)
    time_ok, memory_ok = wall <= LIMIT_S, job_peak <= LIMIT_MB
    print(f"\nsnakemake figures: {wall:.1f} s wall clock (target <= {LIMIT_S:.0f} s: {'ok' if time_ok else 'MISSED'}); "
          f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"CPU time of the run, every job and Snakemake: {measured['tree_cpu_s']:.0f} s, so about "
          f"{measured['tree_cpu_s'] / 2:.0f} s on 2 otherwise idle cores")
    print(f"largest job: {job_peak:.0f} MB peak RSS (target <= {LIMIT_MB:.0f} MB: {'ok' if memory_ok else 'MISSED'}); "
          f"largest process of the run, kernel-measured: {tree_peak:.0f} MB; Snakemake itself: {snakemake_peak:.0f} MB")
    return time_ok and memory_ok


def run(work: Path, scale: Scale) -> bool:
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(source, work / name)
    config = write_config(work, scale)
    checked, raters, configs = load_workflow_config(yaml.safe_load(config.read_text()), SCHEMA_PATH, str(config))
    config_ids = [c["config_id"] for c in configs]
    strategies = ["ls", *(f"rs-{r}" for r in raters)]
    print(f"{len(config_ids)} configurations x {len(strategies)} strategies = "
          f"{len(config_ids) * len(strategies)} models; {scale.images} + {scale.consensus} images of {scale.size} px")

    start = time.perf_counter()
    write_sweep_files(work, checked, configs)
    build_upstream(work, config)
    print(f"dataset, splits, agreement figures (real rules), sweep files: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    n = write_cached_models(work, checked, strategies, config_ids, scale)
    print(f"cached status.json and val/test detections written: {n:,} detections in "
          f"{time.perf_counter() - start:.0f} s")
    snakemake(work, config, "--cores", "1", "--touch", *cached_targets(strategies, config_ids),
              log=work / "touch.log")
    checkpoints = list((work / "results" / "models").rglob("*.pt"))
    if checkpoints:
        sys.exit(f"checkpoints present: {checkpoints[:3]}")
    planned = planned_jobs(work, config)
    print(f"dry run of `snakemake figures` (up to the members checkpoint): {planned}")
    if not planned or set(planned) - AFTER_PREDICTION:
        sys.exit(f"`snakemake figures` would run more than the jobs after prediction: "
                 f"{sorted(set(planned) - AFTER_PREDICTION)}")

    shutil.rmtree(work / "results" / "benchmarks")  # only the timed run's jobs from here on
    measured = timed_figures(work, config)
    jobs = job_benchmarks(work)
    ran = {rule.split(" ")[0] for rule in jobs}
    ran = {"evaluate_detections" if r == "evaluate" else r for r in ran}
    if ran - AFTER_PREDICTION:
        sys.exit(f"the timed run ran other jobs too: {sorted(ran - AFTER_PREDICTION)}")
    missing = [f for f in ("fig3_reliability.png", "fig4_ensemble_size.png", "fig3_reliability.pdf")
               if not (work / "results" / "figures" / f).exists()]
    if missing:
        sys.exit(f"figures missing after the run: {missing}")
    return report(jobs, measured)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="paper")
    parser.add_argument("--keep", type=Path, default=None, help="work in this (new) folder and keep it")
    args = parser.parse_args()
    print(f"bench_cache: scale {args.scale}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        return 0 if run(args.keep.resolve(), SCALES[args.scale]) else 1
    with tempfile.TemporaryDirectory(prefix="bench_cache-") as tmp:
        return 0 if run(Path(tmp), SCALES[args.scale]) else 1


if __name__ == "__main__":
    sys.exit(main())
