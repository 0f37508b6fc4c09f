"""resources.reproducible reaches a real training job: the workflow runs the pretrain job (tiny synthetic data,
one epoch) with the option on, and the job's own record (status.json) shows the pin in its environment and
torch dispatching to AVX2, whatever this machine's top capability. (What the pin buys and costs is measured in
benchmarks/bench_reproducible.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multirater.core.kernels import REPRODUCIBLE_KERNELS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = {
    "dataset": {"manifest": None, "synthetic": {"seed": 1, "images": 8, "consensus_images": 2, "raters": 2,
                                                "size": 64, "base_images": 8}},
    "model": {"name": "tiny", "min_size": 64, "max_size": 64},
    "pretrain": {"epochs": 1, "batch_size": 4},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
    "resources": {"device": "cpu", "reproducible": True},
}


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_the_pin_reaches_the_training_job(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    # nothing pinned from outside: whatever the job has, the workflow gave it
    env = {k: v for k, v in os.environ.items() if k not in REPRODUCIBLE_KERNELS}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "--profile", str(REPO / "profiles" / "local"), "--cores", "1",
           "results/models/pretrain/status.json"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    status = json.loads((tmp_path / "results" / "models" / "pretrain" / "status.json").read_text())
    assert status["status"] == "ok"
    job = status["environment"]
    assert {k: job["kernels"].get(k) for k in REPRODUCIBLE_KERNELS} == REPRODUCIBLE_KERNELS
    # torch's own answer inside the job: AVX2 on any machine that has it (AVX-512 ones included)
    assert ("avx2" in cpu_flags()) == (job["cpu_capability"] == "AVX2"), (job["cpu_capability"], cpu_flags() & {
        "avx2", "avx512f"})
    assert job["threads"] == 1 and job["device"] == "cpu"
