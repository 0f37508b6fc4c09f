"""The SLURM pre-flight against the real test cluster: a run whose request no node can meet (too much
memory, too many CPUs, a GPU on a cluster without GPUs) stops at the start, before any sbatch, with one
message naming the rule, its request and the node that `sinfo` lists; the working directory is left
unlocked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .slurm_helpers import PARTITION, cluster_node, sacct, snakemake
from .test_slurm_workflow import REPO, prepare, workflow_args

CASES = {
    # (extra options, what the message says the job asks for, the rule it names)
    "memory": (["--set-resources", "train:mem_mb=999999"], "999999 MB", "train"),
    "cpus": (["--set-threads", "train=64"], "64 CPUs", "train"),
    # one GPU per model job and for the base model (as on a GPU cluster: resources.device is cpu here, which
    # asks for none unless the site says so), in the default partition, whose node has none
    "gpu": ([], "1 GPU,", "pretrain"),
}
SITE = {"gpu": {"slurm": {"gpu": {"count": 1}}}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_request_larger_than_any_node_stops_the_run_before_any_sbatch(case: str, tmp_path: Path,
                                                                         slurm_cluster: None) -> None:
    extra, asks, rule = CASES[case]
    work = prepare(tmp_path / "run", **SITE.get(case, {}))
    args = workflow_args(work, "--profile", str(REPO / "profiles" / "slurm"), *extra,
                         "--slurm-init-seconds-before-status-checks", "2")
    done = snakemake(tmp_path, *args, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-3000:]

    [message] = [line for line in log.splitlines() if line.startswith("SLURM pre-flight: ")]
    name, cpus, mem = cluster_node()
    offending = message.split("Nothing was submitted")[0]
    assert re.search(rf"\b{rule}\b", offending), message
    assert asks in offending, message
    assert f"the largest node has {cpus} CPUs, {mem} MB, 0 GPUs (node {name}, partition {PARTITION}" in offending
    assert "Nothing was submitted" in message

    # Nothing reached SLURM: no submission in the log, no job under this run's id.
    assert "submitted with SLURM jobid" not in log
    for run in re.findall(r"SLURM run ID: (\S+)", log):
        assert sacct(name=run) == []
    # The working directory is not left locked: a dry run goes through.
    dry = snakemake(tmp_path, *workflow_args(work, "--profile", str(REPO / "profiles" / "local"), "-n"), timeout=300)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
