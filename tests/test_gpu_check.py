"""`make gpu-check` (benchmarks/gpu_check.py) is prepared for the first GPU node: until one is at hand, its CPU
parts run here, on tiny inputs, so the script is known to work end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_rehearses_every_step_on_the_cpu_and_prints_one_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| step | status |") and len(table) == 1 + 4  # header + one row per step
    steps = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table[1:]}
    assert steps == {"test-gpu": "ok", "bench_train": "ok", "bench_input": "ok", "train": "ok"}
    assert (tmp_path / "summary.md").read_text().count("\n| ") == 5

    # the GPU tests were collected and, without CUDA, all skipped (none failed)
    gpu_tests = len(list((ROOT / "tests" / "gpu").glob("test_*.py")))
    assert "0 passed, 0 failed" in result.stdout and gpu_tests >= 2
    # the training step trained its epochs with finite losses, validated, and says what validation cost
    train = json.loads((tmp_path / "train.json").read_text())
    assert train["status"] == "ok" and len(train["rows"]) == 2
    assert all(math.isfinite(float(r["loss"])) and float(r["val_seconds"]) > 0 for r in train["rows"])
    assert train["val_windows"][0] <= train["val_windows"][1]
    # bench_input measured 0, 1 and 2 workers, with and without augmentation
    bench = json.loads((tmp_path / "bench_input.json").read_text())
    assert {(r["workers"], r["augment"]) for r in bench["runs"]} == {(w, a) for w in (0, 1, 2) for a in (False, True)}
    assert all(r["crops"] == 2 and r["crops_per_s"] > 0 for r in bench["runs"])
