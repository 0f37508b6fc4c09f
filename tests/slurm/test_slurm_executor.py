"""multirater commands through the real SLURM executor: every job goes through sbatch, sacct
accounts for it, the outputs equal a local run, and a job over its time limit is retried with more
time (runtime grows with the attempt)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .slurm_helpers import VENV_BIN, env, rule_of, run_id, sacct, snakemake, submitted_job_ids, write_profile

SNAKEFILE = r'''
SEEDS = [1, 2]

rule all:
    input:
        expand("data/{seed}/splits.json", seed=SEEDS),
        "slow.txt",

rule synth:
    output: "data/{seed}/dataset.yaml"
    shell: "multirater synth --out data/{wildcards.seed} --seed {wildcards.seed} --images 6 --consensus-images 2 --size 64"

rule split:
    input: "data/{seed}/dataset.yaml"
    output: "data/{seed}/splits.json"
    shell: "multirater check --dataset {input} && multirater split --dataset {input} --out {output} --seed 7"

# Outlives a 1-minute limit: attempt 1 hits TIMEOUT, the retry gets 2 minutes (runtime = attempt).
rule slow:
    output: "slow.txt"
    resources: runtime=lambda wildcards, attempt: attempt
    shell: "echo start $SLURM_JOB_ID $(date +%s) >> slow.log; sleep 65; echo $SLURM_JOB_ID > {output}"
'''


def wait_until_accounted(job_ids: list[str], timeout: float = 30) -> list[dict[str, str]]:
    """slurmdbd records a job's end a moment after slurmctld; wait for every job to be final."""
    deadline = time.monotonic() + timeout
    while True:
        records = sacct(jobs=job_ids)
        final = [r for r in records if r["State"] not in ("PENDING", "RUNNING", "REQUEUED")]
        if len(final) == len(job_ids) or time.monotonic() > deadline:
            return records
        time.sleep(1)


def test_multirater_jobs_run_through_sbatch(tmp_path: Path, slurm_cluster: None) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Snakefile").write_text(SNAKEFILE)
    profile = write_profile(tmp_path / "profile")

    done = snakemake(work, "--profile", str(profile), "--retries", "1", timeout=400)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]

    # Every job this run submitted is in the accounting database under the run's id.
    submitted = submitted_job_ids(log)
    records = wait_until_accounted(submitted)
    by_id = {r["JobID"]: r for r in records}
    assert sorted(by_id) == sorted(submitted)
    assert {r["JobName"] for r in records} == {run_id(log)}
    assert {r["JobID"] for r in sacct(name=run_id(log))} == set(submitted)
    rules = sorted(rule_of(r) for r in records)
    # synth x2, split x2 ran once each; slow ran twice (the first attempt over its limit).
    assert rules == ["slow", "slow", "split", "split", "synth", "synth"], records

    ok = [r for r in records if rule_of(r) in ("synth", "split")]
    assert all(r["State"] == "COMPLETED" and r["ExitCode"] == "0:0" for r in ok), ok

    # Time limit: attempt 1 got 1 minute and timed out, attempt 2 got 2 minutes and completed.
    slow = sorted((r for r in records if rule_of(r) == "slow"), key=lambda r: int(r["JobID"]))
    assert [r["Timelimit"] for r in slow] == ["00:01:00", "00:02:00"], slow
    assert slow[0]["State"] == "TIMEOUT", slow
    assert slow[1]["State"] == "COMPLETED", slow
    started = (work / "slow.log").read_text().split()
    assert started[1::3] == [slow[0]["JobID"], slow[1]["JobID"]]
    assert (work / "slow.txt").read_text().strip() == slow[1]["JobID"]

    # The job logs the plugin kept name the SLURM job ids (the work happened inside those jobs).
    logs = {p.stem for p in (work / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert {r["JobID"] for r in ok} <= logs

    # Same outputs as running the same commands locally (synth and split are seeded).
    local = tmp_path / "local"
    for seed in (1, 2):
        out = local / str(seed)
        multirater = str(VENV_BIN / "multirater")
        subprocess.run([multirater, "synth", "--out", str(out), "--seed", str(seed), "--images", "6",
                        "--consensus-images", "2", "--size", "64"], check=True, env=env(), capture_output=True)
        subprocess.run([multirater, "split", "--dataset", str(out / "dataset.yaml"), "--out",
                        str(out / "splits.json"), "--seed", "7"], check=True, env=env(), capture_output=True)
        cluster = work / "data" / str(seed)
        assert json.loads((cluster / "splits.json").read_text()) == json.loads((out / "splits.json").read_text())
        for name in ("rater1.json", "rater2.json", "consensus.json"):
            assert (cluster / name).read_bytes() == (out / name).read_bytes(), name
