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


def cluster_node() -> tuple[str, int, int]:
    """The test cluster's one node: its name, CPUs and memory (MB), as sinfo lists them."""
    done = subprocess.run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N|%c|%m"], capture_output=True,
                          text=True, check=True)
    [line] = done.stdout.split()
    name, cpus, mem = line.split("|")
    return name, int(cpus), int(mem)


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


SACCT_FIELDS = ["JobID", "JobName", "Comment", "State", "ExitCode", "Timelimit", "Elapsed", "ReqCPUS", "ReqMem",
                "ReqTRES", "Partition", "AllocTRES"]


def sacct(*, name: str | None = None, jobs: list[str] | None = None) -> list[dict[str, str]]:
    """Allocation records (no steps) from the accounting database, by job name or by ids."""
    cmd = ["sacct", "-X", "-n", "-P", "--starttime=now-1days", "--format=" + ",".join(SACCT_FIELDS)]
    if name:
        cmd.append(f"--name={name}")
    if jobs:
        cmd.append("--jobs=" + ",".join(jobs))
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [dict(zip(SACCT_FIELDS, line.split("|"))) for line in done.stdout.splitlines() if line.strip()]


def rule_of(record: dict[str, str]) -> str:
    """The rule a job ran: the plugin writes `rule_<name>[_wildcards_<...>]` into the job comment."""
    match = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", record["Comment"])
    assert match, f"job {record['JobID']} has no rule comment: {record}"
    return match.group(1)


# A model's SLURM job (profiles/slurm groups its training, predictions and evaluation as
# model_<strategy>_<config_id>): the plugin's comment is rule_<group id>_<the group's rules, sorted, joined by _>.
MODEL_RULES = ("evaluate_detections", "predict", "train")
_RULE = "(?:" + "|".join(MODEL_RULES) + ")"
MODEL_GROUP = re.compile(rf"rule_model_(?P<strategy>.+)_(?P<config_id>[0-9a-f]{{8}})_(?P<rules>{_RULE}(?:_{_RULE})*)$")


def model_of(comment: str) -> tuple[str, str, frozenset[str]] | None:
    """(strategy, config_id, rules) of a model's group job, from its comment; None for other jobs."""
    match = MODEL_GROUP.match(comment)
    if match is None:
        return None
    return match["strategy"], match["config_id"], frozenset(re.findall("|".join(MODEL_RULES), match["rules"]))


def rules_of(record: dict[str, str]) -> frozenset[str]:
    """The rules one SLURM job ran: a model's group job's rules, else the one rule in its comment."""
    model = model_of(record["Comment"])
    return model[2] if model else frozenset([rule_of(record)])


def mem_mb(value: str) -> int:
    """sacct's ReqMem (e.g. 4000M, 19G, 2T; older SLURM appends n per node or c per CPU) in MB."""
    value = value.rstrip("nc")
    number, unit = float(value[:-1]), value[-1].upper()
    return round(number * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def group_listings(log: str) -> list[tuple[str, list[dict[str, int | str]]]]:
    """Every group job snakemake submitted, as it listed it: (group id, its members' rule, threads,
    mem_mb and runtime). The SLURM job's request is derived from these by the plugin."""
    listings = []
    for chunk in re.split(r"\] Group job ", log)[1:]:
        group, _, body = chunk.partition(" (jobs in lexicogr. order):")
        # the listing ends where snakemake goes on with other jobs (submission messages may interleave)
        body = re.split(r"\] Group job |\nFinished jobid|\nSelect jobs to execute|\n(?:local)?(?:rule|checkpoint) \w+:",
                        body)[0]
        members = []
        # members are indented (a job outside the group is not)
        for rule, entry in re.findall(r"^[ \t]+rule (\w+):\n(.*?)(?=^[ \t]+rule \w+:$|\Z)", body, flags=re.M | re.S):
            threads = re.search(r"^[ \t]+threads: (\d+)$", entry, flags=re.M)
            members.append({
                "rule": rule,
                "threads": int(threads.group(1)) if threads else 1,
                "mem_mb": int(re.search(r"\bmem_mb=(\d+)", entry).group(1)),
                "runtime": int(re.search(r"\bruntime=(\d+)", entry).group(1)),
            })
        listings.append((group, members))
    return listings


def local_rules(repo: Path) -> set[str]:
    """The rules the workflow runs on the submitting node: its `localrules:` lists."""
    names: set[str] = set()
    for path in [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]:
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", path.read_text(), flags=re.M):
            names.update(re.findall(r"\w+", block))
    return names


def planned_resources(log: str) -> list[tuple[str, str | None, dict[str, str]]]:
    """Every job a (dry) run lists: (rule, its group or None, its resources as text), in the log's order."""
    jobs = []
    rule, group = None, None
    for line in log.splitlines():
        header = re.match(r"^\[.*\] Group job (\S+) ", line)
        if header:
            group = header.group(1)
            continue
        match = re.match(r"^(\s*)(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if match:
            rule = match.group(2)
            if not match.group(1):  # a job outside a group is not indented
                group = None
            continue
        resources = re.match(r"^\s*resources: (.*)$", line)
        if resources and rule is not None:
            values = dict(item.split("=", 1) for item in resources.group(1).split(", ") if "=" in item)
            jobs.append((rule, group, values))
            rule = None
    return jobs
