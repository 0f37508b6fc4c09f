"""The real workflow on the real cluster: a reduced sweep run with the repository's slurm profile
(partition and resources overridden for the one-node test cluster) is interrupted with SIGINT while
training jobs run, restarted and killed with SIGKILL, recovered (scancel the orphans, --unlock) and
rerun to completion. Checks: every training and prediction ran in a SLURM job (sacct), one job per
model (its training and its predictions), the models finished before an interruption were not
retrained (files untouched), and the predictions and metrics equal an uninterrupted run with the
local profile."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from .slurm_helpers import PARTITION, VENV_BIN, env, model_of, rules_of, run_id, sacct, snakemake

REPO = Path(__file__).resolve().parents[2]

# One rater (strategies ls and rs-rater1) x two configurations: 4 trainings, 4 predictions.
REDUCED = {
    # (repeat and base images: config/config.yaml's demo values do not fit 8 images, and a small base is quicker)
    "dataset": {"synthetic": {"seed": 0, "images": 8, "consensus_images": 4, "raters": 1, "size": 64,
                              "repeat_images": 0, "base_images": 8}},
    "model": {"name": "tiny", "min_size": 64, "max_size": 64},
    "pretrain": {"epochs": 1, "lr": 0.001, "batch_size": 4},
    # long enough (about 10 s a job) that the interrupt test finds one model trained while another still
    # trains: with 2 epochs a job took 4.6 s on an idle machine and both running jobs ended unseen between polls
    "training": {"epochs": 10, "patience": 10, "batch_size": 2},
    "sweep": {"grid": {"lr": [0.001, 0.0003], "augment": [True]}},
    "selection": {"ls": 2, "rs": 2},
    "ensembles": {"sizes": [2]},
    "evaluation": {"bootstrap": 10},
    # time limits (minutes) from the workflow config, as on a real cluster: the workflow multiplies
    # them by the attempt number, and the profile leaves them alone
    "resources": {"device": "cpu", "train_threads": 1, "predict_threads": 1, "train_runtime": 10,
                  "predict_runtime": 10},
}
STRATEGIES = ["ls", "rs-rater1"]

# The repository's slurm profile, with what the one-node test cluster needs instead: its partition,
# no GPU request (these command-line options replace the profile's set-resources), quick status checks.
SLURM_OVERRIDES = [
    "--profile", str(REPO / "profiles" / "slurm"),
    "--default-resources", f"slurm_partition={PARTITION}", "mem_mb=1000", "runtime=10",
    "--set-resources", "pretrain:mem_mb=1000", "train:mem_mb=1000", "predict:mem_mb=1000",
    "--set-threads", "pretrain=1", "train=1", "predict=1",
    "--slurm-init-seconds-before-status-checks", "2",
    "--latency-wait", "10",
    "--jobs", "2",  # trainings run two at a time, so some finish while others still run
]


def workflow_args(work: Path, *extra: str) -> list[str]:
    return ["-s", str(REPO / "Snakefile"), "-d", str(work),
            "--configfile", str(REPO / "config" / "config.yaml"), str(work.parent / "reduced.yaml"), *extra]


def prepare(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "reduced.yaml").write_text(yaml.safe_dump({**REDUCED, **changes}))
    return folder / "work"


def config_ids(work: Path) -> list[str]:
    """The sweep's ids (`multirater sweep` on the reduced config: ids depend only on each
    configuration's own values)."""
    done = subprocess.run([str(VENV_BIN / "multirater"), "sweep", "--config", str(work.parent / "reduced.yaml"),
                           "--out", str(work.parent / "ids.tsv")], capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    with open(work.parent / "ids.tsv", newline="") as fh:
        return [row["config_id"] for row in csv.DictReader(fh, delimiter="\t")]


def targets(ids: list[str]) -> list[str]:
    return ["sweep", *(f"results/metrics/models/{s}/{c}.json" for s in STRATEGIES for c in ids)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted reference: the same config with the local profile."""
    work = prepare(tmp_path_factory.mktemp("local") / "run")
    ids = config_ids(work)
    done = snakemake(work.parent, *workflow_args(work, "--profile", str(REPO / "profiles" / "local"),
                                                 "--cores", "2", *targets(ids)), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work


def trained(work: Path, log: str) -> list[Path]:
    """Model folders whose training job snakemake has seen finish (a job still running past its
    status.json, or one whose end snakemake has not yet registered, counts as incomplete)."""
    outputs = dict((jobid, out) for out, jobid in
                   re.findall(r"rule train:\n.*?output: (\S+)\n.*?jobid: (\d+)\n", log, flags=re.S))
    done = re.findall(r"Finished jobid: (\d+) \(Rule: train\)", log)
    return sorted((work / outputs[jobid]).parent for jobid in done)


def training_now(work: Path, name: str, ids: list[str]) -> list[Path]:
    """Models whose job (training, then predictions) is RUNNING in SLURM and has not written its
    status.json yet."""
    done = subprocess.run(["squeue", "-h", f"--name={name}", "-t", "RUNNING", "-o", "%k"],
                          capture_output=True, text=True)
    jobs = [model_of(c.strip()) for c in done.stdout.splitlines()]
    running = {(job[0], job[1]) for job in jobs if job and "train" in job[2]}
    models = [work / "results" / "models" / s / c for s in STRATEGIES for c in ids]
    return [m for m in models if (m.parent.name, m.name) in running and not (m / "status.json").exists()]


def finished_on_disk(work: Path, ids: list[str]) -> list[Path]:
    """Models whose training wrote its status.json (the train rule's output, written last)."""
    models = [work / "results" / "models" / s / c for s in STRATEGIES for c in ids]
    return [m for m in models if (m / "status.json").exists()]


def queued(name: str) -> list[str]:
    done = subprocess.run(["squeue", "-h", f"--name={name}", "-o", "%i"], capture_output=True, text=True)
    return done.stdout.split()


def run_until(args: list[str], log_path: Path, sig: signal.Signals,
              ready: Callable[[str, str], bool], timeout: float = 600) -> tuple[str, str]:
    """Start snakemake, send it `sig` once ready(run id, log) holds; return the run id and the log."""
    with open(log_path, "w") as out:
        # SIGINT as a user's Ctrl-C: a shell starts background commands with SIGINT ignored, and snakemake
        # would inherit that (the suite run with `&` or from a script) and run on to the end
        process = subprocess.Popen(args, cwd=log_path.parent, env=env(), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        name = None
        deadline = time.monotonic() + timeout
        try:
            while True:
                log = log_path.read_text()
                assert process.poll() is None, f"snakemake ended before it could be stopped:\n{log[-3000:]}"
                assert time.monotonic() < deadline, f"not ready to stop in {timeout} s:\n{log[-3000:]}"
                if name is None and "SLURM run ID" in log:
                    name = run_id(log)
                if name and ready(name, log):
                    break
                time.sleep(0.5)
            process.send_signal(sig)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode != 0
    return name, log_path.read_text()


def wait_dequeued(name: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while queued(name) and time.monotonic() < deadline:
        time.sleep(0.5)
    return queued(name)


def wait_accounted(name: str, timeout: float = 60) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        records = sacct(name=name)
        if all(r["State"] not in ("PENDING", "RUNNING", "REQUEUED") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(1)


def mtimes(folders: list[Path]) -> dict[str, int]:
    return {str(f): f.stat().st_mtime_ns for folder in folders for f in sorted(folder.iterdir())}


def assert_same_detections(a: Path, b: Path) -> None:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert da["image_ids"] == db["image_ids"], a
    assert da["meta"]["status"] == db["meta"]["status"] == "ok", a
    assert len(da["detections"]) == len(db["detections"]), a
    for key in ("image_id", "category_id"):
        assert [d[key] for d in da["detections"]] == [d[key] for d in db["detections"]], (a, key)
    for key in ("bbox", "score"):
        np.testing.assert_allclose([d[key] for d in da["detections"]], [d[key] for d in db["detections"]],
                                   rtol=0, atol=1e-5, err_msg=f"{a} {key}")


def assert_same_metrics(a: Path, b: Path) -> None:
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    assert [(m["metric"], m["iou"]) for m in ma["metrics"]] == [(m["metric"], m["iou"]) for m in mb["metrics"]]
    for x, y in zip(ma["metrics"], mb["metrics"]):
        np.testing.assert_allclose(x["value"], y["value"], rtol=0, atol=1e-9, err_msg=f"{a} {x['metric']}")
        np.testing.assert_allclose(x.get("values", []), y.get("values", []), rtol=0, atol=1e-9)


def test_interrupted_sweep_on_slurm_resumes_and_matches_local(tmp_path: Path, local_run: Path,
                                                              slurm_cluster: None) -> None:
    work = prepare(tmp_path / "run")
    ids = config_ids(work)
    assert len(ids) == 2
    args = [str(VENV_BIN / "snakemake"), *workflow_args(work, *SLURM_OVERRIDES, *targets(ids))]

    # 1. Start on the cluster; SIGINT as soon as snakemake has seen a training finish, with others left
    # (waiting for another training to be caught RUNNING raced short jobs: the run could end first).
    name1, log1 = run_until(args, tmp_path / "run1.log", signal.SIGINT,
                            lambda name, log: 1 <= len(trained(work, log)) < 4)
    finished = trained(work, log1)
    assert 1 <= len(finished) < 4, finished
    # SIGINT makes snakemake cancel its jobs, but a job submitted in the same moment can escape the
    # cancel: cancel whatever of this run is still queued before rerunning (the documented recovery).
    subprocess.run(["scancel", f"--name={name1}"], check=True)
    assert wait_dequeued(name1) == []
    run1 = wait_accounted(name1)
    run1_trains = [r for r in run1 if "train" in rules_of(r)]
    assert sum(r["State"] == "COMPLETED" for r in run1_trains) >= len(finished), run1
    before = mtimes(finished)

    # 2. Hard kill: `kill -9` snakemake while a training job runs. Its jobs live on as orphans and the
    # working directory stays locked; recovery is: cancel the orphans, unlock, rerun.
    name2, log2 = run_until(args, tmp_path / "run2.log", signal.SIGKILL,
                            lambda name, log: bool(training_now(work, name, ids)))
    finished += [m for m in trained(work, log2) if m not in finished]
    assert len(finished) < 4, finished
    orphans = queued(name2)
    assert orphans, "the killed run left no job behind to recover from"
    locked = snakemake(tmp_path, *args[1:], timeout=120)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    subprocess.run(["scancel", f"--name={name2}"], check=True)
    assert wait_dequeued(name2) == []
    unlocked = snakemake(tmp_path, *args[1:], "--unlock", timeout=120)
    assert unlocked.returncode == 0, unlocked.stdout[-2000:] + unlocked.stderr[-2000:]
    run2 = wait_accounted(name2)
    assert {r["JobID"] for r in run2 if r["State"].startswith("CANCELLED")} >= set(orphans), run2
    # An orphan can finish its training after the kill and before scancel (no snakemake saw it): its
    # model is finished as well, and the rerun must leave it alone like the others.
    seen = list(finished)
    finished += [m for m in finished_on_disk(work, ids) if m not in finished]
    before.update(mtimes([m for m in finished if str(m) not in {k.rsplit("/", 1)[0] for k in before}]))

    # 3. Rerun: it completes, without retraining the models that were finished.
    done = snakemake(tmp_path, *args[1:], timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    run3 = wait_accounted(run_id(done.stdout + done.stderr))
    assert mtimes(finished) == before, "a finished model was retrained or touched"
    run3_trains = [r for r in run3 if "train" in rules_of(r)]
    for folder in finished:
        assert not [r for r in run3_trains if model_of(r["Comment"])[:2] == (folder.parent.name, folder.name)], folder
    assert len(run3_trains) == 4 - len(finished), run3_trains
    # One SLURM job per model: its training, its predictions (validation and test) and its evaluation
    # in one job, and no job of its own for any of its predictions.
    models3 = [model_of(r["Comment"]) for r in run3 if model_of(r["Comment"])]
    assert all(rules == {"train", "predict", "evaluate_detections"} for _s, _c, rules in models3 if "train" in rules), run3
    trained3 = {(s, c) for s, c, rules in models3 if "train" in rules}
    assert not [m for m in models3 if m[:2] in trained3 and "train" not in m[2]], run3

    # Every training and prediction went through sbatch, and each output came from a COMPLETED job.
    records = run1 + run2 + run3
    completed = [r["Comment"] for r in records if r["State"] == "COMPLETED"]
    completed_models = [model_of(c) for c in completed if model_of(c)]
    for strategy in STRATEGIES:
        for config_id in ids:
            jobs = [rules for s, c, rules in completed_models if (s, c) == (strategy, config_id)]
            trainings = sum("train" in rules for rules in jobs)
            predictions = sum("predict" in rules for rules in jobs)
            assert predictions >= 1, (strategy, config_id, records)
            # a model snakemake saw finish was trained once; one whose job ended unseen is retrained
            # unless its training had finished (its job may have been cancelled in the predictions)
            folder = work / "results" / "models" / strategy / config_id
            if folder in seen:
                assert trainings == 1, (strategy, config_id, records)
            elif folder not in finished:
                assert trainings >= 1, (strategy, config_id, records)
    assert sum(c == "rule_pretrain" for c in completed) == 1, records
    assert all(r["State"] == "COMPLETED" or r["State"].startswith("CANCELLED") for r in records), records
    (tmp_path / "sacct.txt").write_text("\n".join("|".join(r.values()) for r in records) + "\n")

    # 4. Same predictions and metrics as the uninterrupted local run.
    for strategy in STRATEGIES:
        for config_id in ids:
            assert json.loads((work / f"results/models/{strategy}/{config_id}/status.json").read_text())["status"] == "ok"
            assert_same_detections(work / f"results/predictions/test/{strategy}/{config_id}.json",
                                   local_run / f"results/predictions/test/{strategy}/{config_id}.json")
            assert_same_metrics(work / f"results/metrics/models/{strategy}/{config_id}.json",
                                local_run / f"results/metrics/models/{strategy}/{config_id}.json")
