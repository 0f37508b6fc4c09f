"""Running snakemake against the test cluster and reading its jobs back from `sacct`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

VENV_BIN = Path(sys.executable).parent
PARTITION = "debug"  # the one partition tests/slurm/up.sh defines


def env() -> dict[str, str]:
    """The environment for snakemake and its SLURM jobs (sbatch exports it): the venv first on PATH."""
    out = dict(os.environ)
    out["PATH"] = f"{VENV_BIN}{os.pathsep}{out.get('PATH', '')}"
    out["PYTHONUNBUFFERED"] = "1"
    out.setdefault("OMP_NUM_THREADS", "1")
    return out


def write_profile(folder: Path, **overrides: object) -> Path:
    """A slurm profile for the one-node test cluster: short status-check delay, small memory."""
    profile = {
        "executor": "slurm",
        "jobs": 4,
        "latency-wait": 10,
        "printshellcmds": True,
        "default-resources": [f"slurm_partition={PARTITION}", "mem_mb=500", "runtime=10"],
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-keep-successful-logs": True,
    }
    profile.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run snakemake in workdir; SIGINT (its clean stop: it scancels its jobs) if it overruns."""
    cmd = ["timeout", "-s", "INT", "-k", "30", str(timeout), str(VENV_BIN / "snakemake"), *args]
    return subprocess.run(cmd, cwd=workdir, env=env(), capture_output=True, text=True)


def run_id(log: str) -> str:
    """The executor plugin's run id: every job of one snakemake run carries it as its SLURM job name."""
    found = re.findall(r"SLURM run ID: (\S+)", log)
    assert found, f"no SLURM run ID in snakemake's log:\n{log[-3000:]}"
    return found[-1]


def submitted_job_ids(log: str) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", log)


def sacct(*, name: str | None = None, jobs: list[str] | None = None) -> list[dict[str, str]]:
    """Allocation records (no steps) from the accounting database, by job name or by ids."""
    cmd = ["sacct", "-X", "-n", "-P", "--starttime=now-1days",
           "--format=JobID,JobName,Comment,State,ExitCode,Timelimit,Elapsed"]
    if name:
        cmd.append(f"--name={name}")
    if jobs:
        cmd.append("--jobs=" + ",".join(jobs))
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    keys = ["JobID", "JobName", "Comment", "State", "ExitCode", "Timelimit", "Elapsed"]
    return [dict(zip(keys, line.split("|"))) for line in done.stdout.splitlines() if line.strip()]


def rule_of(record: dict[str, str]) -> str:
    """The rule a job ran: the plugin writes `rule_<name>[_wildcards_<...>]` into the job comment."""
    match = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", record["Comment"])
    assert match, f"job {record['JobID']} has no rule comment: {record}"
    return match.group(1)
