"""Snakemake's benchmark files (a rule's ``benchmark:``): one TSV per job, one row per run of it.

Snakemake writes them; this is the one reader (the calibration table's training cost, ``multirater timings``).
Columns used: ``s`` (wall-clock seconds), ``max_rss`` (MB), ``cpu_time`` (seconds) and, in the extended format
(``--benchmark-extended``, set in profiles/local and profiles/slurm), ``rule_name``. Snakemake writes ``NA`` where
it collected no process data (a job shorter than its first measurement); that reads as None.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import UserError


@dataclass(frozen=True)
class BenchmarkRun:
    """One row of a benchmark file."""

    seconds: float
    max_rss_mb: float | None
    cpu_seconds: float | None
    rule: str | None  # None unless the file is in the extended format


def _number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "NA", "-"):
        return None
    value = float(text)
    return None if math.isnan(value) else value


def read_benchmark(path: str | Path) -> list[BenchmarkRun]:
    """Every row (run) of one benchmark file; a file without a numeric ``s`` column is a UserError."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    runs = []
    for number, row in enumerate(rows, start=1):
        try:
            seconds = float(row["s"])
            rss, cpu = _number(row.get("max_rss")), _number(row.get("cpu_time"))
        except (KeyError, TypeError, ValueError):
            raise UserError("not a Snakemake benchmark file (needs a numeric 's' column)", path,
                            f"row {number}") from None
        rule = (row.get("rule_name") or "").strip() or None
        runs.append(BenchmarkRun(seconds, rss, cpu, rule))
    return runs
