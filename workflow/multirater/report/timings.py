"""Where a run's time went: one row per rule from the rules' own benchmark files (``results/benchmarks``).

Every job's benchmark file is one job; its seconds are the sum over its rows (a rerun or a ``repeat`` adds
rows). Per rule: the number of jobs, their total, mean and longest wall-clock seconds, the CPU seconds they
used and the largest resident memory any of them reached; sorted by total, the costliest rule first.

A file names its rule in the extended format (``rule_name``; the profiles ask Snakemake for it). A file
without it, written by a run without the profiles, is grouped under the first folder of its path below the
benchmarks folder (``train/ls/1a2b3c4d.tsv``: ``train``), marked ``*``: in this workflow that folder is the
rule's name or its stage's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multirater.core.errors import UserError
from multirater.io.benchmarks import BenchmarkRun, read_benchmark

GUESSED = "*"  # marks a rule name taken from a file's folder, not from the file
COLUMNS = ("rule", "jobs", "total_s", "mean_s", "max_s", "cpu_s", "max_rss_mb")


@dataclass
class RuleTimes:
    """What one rule's jobs cost; ``cpu_s`` and ``max_rss_mb`` over the jobs that measured them."""

    rule: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def add(self, runs: list[BenchmarkRun]) -> None:
        self.seconds.append(sum(run.seconds for run in runs))
        if any(run.cpu_seconds is not None for run in runs):
            self.cpu.append(sum(run.cpu_seconds or 0.0 for run in runs))
        self.rss += [run.max_rss_mb for run in runs if run.max_rss_mb is not None]

    def row(self) -> dict[str, object]:
        total = sum(self.seconds)
        return {"rule": self.rule, "jobs": len(self.seconds), "total_s": total, "mean_s": total / len(self.seconds),
                "max_s": max(self.seconds), "cpu_s": sum(self.cpu) if self.cpu else None,
                "max_rss_mb": max(self.rss) if self.rss else None}


def rule_of(path: Path, runs: list[BenchmarkRun], folder: Path) -> str:
    """The rule that wrote ``path``: its ``rule_name``, else its first folder below ``folder`` (marked)."""
    named = {run.rule for run in runs if run.rule}
    if len(named) > 1:
        raise UserError(f"rows of several rules ({', '.join(sorted(named))})", path, "rule_name")
    if named:
        return named.pop()
    relative = path.relative_to(folder)
    first = relative.parts[0] if len(relative.parts) > 1 else relative.name.removesuffix(".tsv")
    return first + GUESSED


def rule_timings(folder: str | Path) -> list[dict[str, object]]:
    """The table (module docstring) of every ``*.tsv`` below ``folder``; empty files (no runs) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("no such folder (run the workflow first: every rule writes its benchmark there)", folder)
    rules: dict[str, RuleTimes] = {}
    for path in sorted(folder.rglob("*.tsv")):
        runs = read_benchmark(path)
        if runs:
            name = rule_of(path, runs, folder)
            rules.setdefault(name, RuleTimes(name)).add(runs)
    rows = [times.row() for times in rules.values()]
    return sorted(rows, key=lambda r: (-float(r["total_s"]), str(r["rule"])))


def format_timings(rows: list[dict[str, object]]) -> str:
    """The table as aligned text, with a total line; memory in MB, times in seconds."""
    from tabulate import tabulate

    total = {"rule": "total", "jobs": sum(int(r["jobs"]) for r in rows),
             "total_s": sum(float(r["total_s"]) for r in rows), "mean_s": None, "max_s": None,
             "cpu_s": sum(float(r["cpu_s"]) for r in rows if r["cpu_s"] is not None), "max_rss_mb": None}
    body = [[r[c] for c in COLUMNS] for r in [*rows, total]]
    text = tabulate(body, headers=list(COLUMNS), floatfmt=".1f", missingval="-")
    if any(str(r["rule"]).endswith(GUESSED) for r in rows):
        text += (f"\n{GUESSED} no rule_name in these benchmark files (a run without --benchmark-extended): "
                 "grouped by their folder")
    return text + "\n"
