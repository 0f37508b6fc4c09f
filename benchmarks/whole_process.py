"""Whole-process timing for the fusion benchmarks: `multirater fuse` and the ensemble-boxes baseline
(wbf_files.py) each run as a fresh process on the same detections files, wall time and peak resident memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent


# A small launcher starts the command: a child's peak memory (ru_maxrss) includes what it inherited at the fork,
# so it must not be forked from this (large) process.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
      os.waitstatus_to_exitcode(status))
"""


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds of CPU, user + system: less sensitive than the wall time to a busy machine
    peak_mb: float  # peak resident memory


def measure(command: list[str]) -> Run:
    """Wall time, CPU time and peak memory of ``command`` run as a fresh process; fails if it fails."""
    result = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True, check=True)
    wall, cpu, rss, code = result.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited with {code}")
    return Run(float(wall), float(cpu), float(rss))  # Linux reports ru_maxrss in kilobytes: rss is in MB


def best_of(command: list[str], repeat: int) -> Run:
    """The fastest of ``repeat`` runs (wall and CPU each), and the largest peak memory seen."""
    runs = [measure(command) for _ in range(repeat)]
    return Run(min(r.wall for r in runs), min(r.cpu for r in runs), max(r.peak_mb for r in runs))


def fuse_command(preds: list[Path], out: Path, sources: list[str] | None = None) -> list[str]:
    """`multirater fuse` on ``preds``, as the workflow runs it (the installed entry point)."""
    entry = shutil.which("multirater", path=str(Path(sys.executable).parent)) or "multirater"
    command = [entry, "fuse", *map(str, preds), "--out", str(out), "--iou", "0.5"]
    return command + (["--sources", *sources] if sources else [])


def wbf_command(preds: list[Path], out: Path, size: float) -> list[str]:
    """ensemble-boxes WBF on the same files (reads them, fuses every image, writes COCO results)."""
    return [sys.executable, str(HERE / "wbf_files.py"), *map(str, preds), "--out", str(out), "--size", str(size)]


def wbf_available() -> bool:
    try:
        import ensemble_boxes  # noqa: F401
    except ImportError:
        return False
    return True
