"""Whole-process timing for the fusion benchmarks: `multirater fuse` and the ensemble-boxes baseline
(wbf_files.py) each run as a fresh process on the same detections files, wall time and peak resident memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of ``command`` run as a child process; fails if it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited with {child.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux: kilobytes


def best_of(command: list[str], repeat: int) -> tuple[float, float]:
    """The fastest of ``repeat`` runs, and the largest peak memory seen."""
    runs = [measure(command) for _ in range(repeat)]
    return min(wall for wall, _ in runs), max(rss for _, rss in runs)


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
