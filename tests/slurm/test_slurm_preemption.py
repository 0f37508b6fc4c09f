"""Preemption of a real training job: `scontrol requeue` of the workflow's model job (its training, then
its prediction, in one SLURM job) once the training has saved last.pt for at least one epoch. SLURM stops the job (SIGTERM: the training saves last.pt and
exits 75) and runs it again under the same job id; the new run resumes from last.pt (its log says
so), and the model's predictions equal an uninterrupted training of the same configuration."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import yaml

from .slurm_helpers import VENV_BIN, env, model_of, run_id, sacct
from .test_slurm_workflow import REDUCED, REPO, SLURM_OVERRIDES, assert_same_detections, config_ids

# One model, trained long enough (many small steps) to be caught between two epochs.
PREEMPT = {**REDUCED,
           "training": {"epochs": 20, "patience": 20, "batch_size": 2},
           "sweep": {"grid": {"lr": [0.001], "augment": [True]}},
           "selection": {"ls": 1, "rs": 1},
           "ensembles": {"sizes": [1]}}
STRATEGY = "ls"


def running_training(name: str) -> str | None:
    """The SLURM job id of the running model job that trains (profiles/slurm: training + predictions)."""
    done = subprocess.run(["squeue", "-h", f"--name={name}", "-t", "RUNNING", "-o", "%i %k"],
                          capture_output=True, text=True)
    for line in done.stdout.splitlines():
        jobid, _, comment = line.strip().partition(" ")
        model = model_of(comment)
        if model and "train" in model[2]:
            return jobid
    return None


def epochs_saved(model: Path) -> int:
    """Epochs finished and saved in last.pt (metrics.csv gets one row per epoch, after last.pt)."""
    metrics = model / "metrics.csv"
    if not (model / "last.pt").exists() or not metrics.exists():
        return 0
    return max(0, len(metrics.read_text().splitlines()) - 1)


def release(jobid: str, timeout: float = 60) -> None:
    """SLURM holds a requeued job back for two minutes (its eligible time); on the test cluster let it
    start again at once, as soon as it is pending."""
    deadline = time.monotonic() + timeout
    while True:
        state = subprocess.run(["squeue", "-h", f"--jobs={jobid}", "-o", "%T"], capture_output=True, text=True)
        if state.stdout.strip() == "PENDING":
            done = subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                return
        assert time.monotonic() < deadline, f"requeued job {jobid} not pending: {state.stdout} {state.stderr}"
        time.sleep(0.5)


def allocations(jobid: str) -> list[str]:
    """Every allocation of one job id, requeued ones included (sacct --duplicates)."""
    done = subprocess.run(["sacct", "-X", "-n", "-P", "-D", f"--jobs={jobid}", "--format=JobID,State,ExitCode"],
                          capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def reference(work: Path, config_id: str, out: Path) -> Path:
    """The same training, uninterrupted, run here with the CLI on the SLURM run's inputs (its data,
    splits, configuration file and base model), then its test predictions."""
    r = work / "results"
    model = out / "model"
    train = [str(VENV_BIN / "multirater"), "train", "--dataset", str(r / "data/synthetic/dataset.yaml"),
             "--splits", str(r / "data/splits.json"), "--strategy", STRATEGY,
             "--config", str(r / f"sweep/configs/{config_id}.yaml"), "--out", str(model),
             "--base", str(r / "models/pretrain/best.pt"), "--device", "cpu", "--threads", "1"]
    predict = [str(VENV_BIN / "multirater"), "predict", "--model", str(model),
               "--dataset", str(r / "data/synthetic/dataset.yaml"), "--splits", str(r / "data/splits.json"),
               "--images", "test", "--out", str(out / "test.json"), "--device", "cpu", "--threads", "1",
               "--batch-size", "4"]
    for cmd in (train, predict):
        done = subprocess.run(cmd, cwd=work, env=env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out / "test.json"


def test_requeued_training_resumes_from_last_checkpoint(tmp_path: Path, slurm_cluster: None) -> None:
    (tmp_path / "reduced.yaml").write_text(yaml.safe_dump(PREEMPT))
    work = tmp_path / "work"
    [config_id] = config_ids(work)
    model = work / "results" / "models" / STRATEGY / config_id
    target = f"results/predictions/test/{STRATEGY}/{config_id}.json"
    args = [str(VENV_BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
            "--configfile", str(REPO / "config" / "config.yaml"), str(tmp_path / "reduced.yaml"),
            *SLURM_OVERRIDES, target]
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["slurm-requeue"] is True and profile["retries"] >= 1

    log_path = tmp_path / "snakemake.log"
    with open(log_path, "w") as out:
        process = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            # Requeue the training job once it has saved last.pt for at least one epoch.
            deadline, jobid, saved = time.monotonic() + 400, None, 0
            while jobid is None or saved < 1:
                log = log_path.read_text()
                assert process.poll() is None, f"snakemake ended before the requeue:\n{log[-3000:]}"
                assert time.monotonic() < deadline, f"no training job to requeue:\n{log[-3000:]}"
                jobid = running_training(run_id(log)) if "SLURM run ID" in log else None
                saved = epochs_saved(model)
                time.sleep(0.2)
            requeue = subprocess.run(["scontrol", "requeue", jobid], capture_output=True, text=True)
            assert requeue.returncode == 0, requeue.stderr
            assert not (model / "status.json").exists(), "the training ended before the requeue"
            release(jobid)
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log = log_path.read_text()
    assert process.returncode == 0, log[-4000:]

    # SLURM stopped the job and ran it again under the same id; the second run resumed.
    history = allocations(jobid)
    assert len(history) >= 2 and history[0].split("|")[1] == "REQUEUED", history
    assert history[-1].split("|")[1] == "COMPLETED", history
    train_log = (work / "results" / "logs" / "train" / STRATEGY / f"{config_id}.log").read_text()
    resumed = re.findall(r"resuming from \S*last\.pt: epoch (\d+), step (\d+)", train_log)
    assert resumed and int(resumed[-1][0]) >= 2, train_log[-2000:]  # after at least one saved epoch
    assert json.loads((model / "status.json").read_text())["status"] == "ok"
    # Its time limit came from the workflow config, not the profile: the model job trains, then predicts
    # the validation and test sets (prediction.splits' default) in one prediction job, one after another
    # (train_runtime 10 + 2 splits x predict_runtime 10 minutes, x attempt 1).
    assert "prediction" not in PREEMPT
    [record] = [r for r in sacct(name=run_id(log)) if r["JobID"] == jobid]
    limit = PREEMPT["resources"]["train_runtime"] + 2 * PREEMPT["resources"]["predict_runtime"]
    assert record["Timelimit"] == f"00:{limit:02d}:00" == "00:30:00", record
    (tmp_path / "sacct.txt").write_text("\n".join(history) + "\n" + "\n".join(
        "|".join(r.values()) for r in sacct(name=run_id(log))) + "\n")

    # The resumed model predicts exactly what an uninterrupted training predicts.
    assert_same_detections(work / target, reference(work, config_id, tmp_path / "reference"))
