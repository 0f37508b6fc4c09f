"""How long `snakemake -n` takes to build the paper-scale DAG (80 configurations x 3 strategies = 240
training jobs), against the demo's DAG as a baseline measured in the same process. Target: <= 20 s.

The paper config points to the user's manifest and GOAT weights; here the dry run uses synthetic data
(dataset.manifest: null) and an empty stand-in for the base checkpoint, in a temporary folder.

    python benchmarks/bench_dag.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 20.0


def dry_run(workdir: Path, configfiles: list[Path]) -> tuple[float, dict[str, int]]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "1", "--configfile", *map(str, configfiles)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dry run failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)}
    return elapsed, jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="dry runs per config (the best is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "goat.bin").write_bytes(b"")
        override = tmp / "override.yaml"
        override.write_text(yaml.safe_dump({"dataset": {"manifest": None},
                                            "model": {**yaml.safe_load((REPO / "config/paper.yaml").read_text())["model"],
                                                      "base_checkpoint": str(tmp / "goat.bin")}}))
        results = {}
        for name, files in (("demo", [REPO / "config/config.yaml"]), ("paper", [REPO / "config/paper.yaml", override])):
            work = tmp / name
            work.mkdir()
            times = []
            for _ in range(args.repeat):
                elapsed, jobs = dry_run(work, files)
                times.append(elapsed)
            results[name] = (min(times), jobs)
    demo_s, demo_jobs = results["demo"]
    paper_s, paper_jobs = results["paper"]
    print(f"demo  DAG: {sum(v for k, v in demo_jobs.items() if k != 'total'):5d} jobs "
          f"({demo_jobs.get('train', 0)} train) in {demo_s:6.2f} s")
    print(f"paper DAG: {sum(v for k, v in paper_jobs.items() if k != 'total'):5d} jobs "
          f"({paper_jobs.get('train', 0)} train) in {paper_s:6.2f} s  "
          f"({paper_s / demo_s:.2f}x the demo; limit {LIMIT_S:.0f} s: {'ok' if paper_s <= LIMIT_S else 'TOO SLOW'})")
    if paper_jobs.get("train") != 240:
        print(f"unexpected number of training jobs: {paper_jobs.get('train')}", file=sys.stderr)
        return 1
    return 0 if paper_s <= LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
