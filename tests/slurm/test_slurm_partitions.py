"""Two partitions on the real test cluster, as most sites have them: `cpu` (node <host>, no GPU) and `gpu`
(node <host>-gpu, two fake GPUs, a 60 min limit), named in a site file (the config's `slurm` section) and
nowhere else. A small run (one rater, one configuration, one epoch) goes through profiles/slurm, and sacct
shows every GPU job (pretrain; a model's training, prediction and evaluation, one SLURM job) in `gpu` with
its GPU, and every other job in `cpu` without one. And the pre-flight refuses, before any sbatch, a run
whose retry would outgrow the GPU partition's time limit, naming the job, the attempt, the request and the
limit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from .slurm_helpers import VENV_BIN, env, model_of, rule_of, run_id, sacct, snakemake
from .test_slurm_workflow import REDUCED, REPO, wait_accounted

SITE = {"slurm": {"cpu": {"partition": "cpu"}, "gpu": {"partition": "gpu", "count": 1}}}
SMALL = {**REDUCED,
         "dataset": {"synthetic": {**REDUCED["dataset"]["synthetic"], "images": 6, "consensus_images": 2,
                                   "base_images": 6}},
         "pretrain": {"epochs": 1, "lr": 0.001, "batch_size": 4},
         "training": {"epochs": 1, "patience": 1, "batch_size": 2},
         "sweep": {"grid": {"lr": [0.001], "augment": [True]}},
         "selection": {"ls": 1, "rs": 1},
         "ensembles": {"sizes": [1]},
         "evaluation": {"bootstrap": 5},
         "calibration": {"enabled": False},
         # a model's job asks for (5 + 5 + 10) min, (5 + 5) x 2 + 10 on its retry: within the 60 min limit
         "resources": {**REDUCED["resources"], "train_runtime": 5, "predict_runtime": 5}}
# The repository's profile as a site would use it: only sizes for the small test nodes and quick polling;
# no partition on the command line (the site file names both).
OVERRIDES = ["--profile", str(REPO / "profiles" / "slurm"),
             "--default-resources", "mem_mb=1000", "runtime=10",
             "--set-resources", "pretrain:mem_mb=1000", "train:mem_mb=1000", "predict:mem_mb=1000",
             "--set-threads", "pretrain=1", "train=1", "predict=1",
             "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "10", "--jobs", "4"]
GPU_RULES = {"pretrain", "train", "predict"}
MODEL_METRICS = "the ls model's metrics"


def write_configs(folder: Path, config: dict) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "small.yaml").write_text(yaml.safe_dump(config))
    (folder / "site.yaml").write_text(yaml.safe_dump(SITE))
    return [str(folder / "small.yaml"), str(folder / "site.yaml")]


def model_metrics(folder: Path) -> str:
    """The metrics file of the ls model (the sweep's one configuration id, from `multirater sweep`)."""
    done = subprocess.run([str(VENV_BIN / "multirater"), "sweep", "--config", str(folder / "small.yaml"),
                           "--out", str(folder / "ids.tsv")], capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    [config_id] = [line.split("\t")[0] for line in (folder / "ids.tsv").read_text().splitlines()[1:]]
    return f"results/metrics/models/ls/{config_id}.json"


def run(tmp_path: Path, config: dict, *targets: str) -> str:
    configs = write_configs(tmp_path, config)
    targets = tuple(model_metrics(tmp_path) if target == MODEL_METRICS else target for target in targets)
    # the targets before --configfile, which would read them as config files
    done = snakemake(tmp_path, *targets, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), *OVERRIDES,
                     "--configfile", str(REPO / "config" / "config.yaml"), *configs, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0 or "SLURM pre-flight" in log, log[-4000:]
    return log


def test_gpu_jobs_run_in_the_gpu_partition_and_the_others_in_the_cpu_partition(tmp_path: Path,
                                                                                slurm_cluster: None) -> None:
    # one model's metrics: CPU jobs (the data, its split and check, the base data and its split) and GPU jobs
    # (pretrain; the model's training, prediction and evaluation in one job). Where the other evaluations go
    # (the ensembles', in cpu) the dry runs of test_partitions_dryrun.py show; a real run of them would add
    # four more rounds of submitting and polling (select, members, fuse, evaluate).
    log = run(tmp_path, SMALL, MODEL_METRICS)
    records = wait_accounted(run_id(log))
    assert records and all(r["State"] == "COMPLETED" for r in records), records

    seen = []
    for record in records:
        model = model_of(record["Comment"])
        rules = model[2] if model else frozenset([rule_of(record)])
        seen.append(rules)
        gpu_job = bool(rules & GPU_RULES)
        assert record["Partition"] == ("gpu" if gpu_job else "cpu"), record
        gpus = re.search(r"gres/gpu=(\d+)", record["AllocTRES"])
        assert (int(gpus.group(1)) if gpus else 0) == (1 if gpu_job else 0), record
    assert sorted(sorted(rules) for rules in seen) == sorted(
        [["synth"], ["split"], ["check"], ["synth_base"], ["base_split"], ["pretrain"],
         ["evaluate_detections", "predict", "train"]]), seen


def test_a_retry_longer_than_the_gpu_partition_allows_is_refused_before_any_sbatch(tmp_path: Path,
                                                                                   slurm_cluster: None) -> None:
    # first attempt: 25 + 5 + 10 = 40 min, within the 60 min limit; the retry (profiles/slurm: retries 1):
    # (25 + 5) x 2 + 10 = 70 min. Memory: the group's largest member, the evaluation's 4000 MB.
    config = {**SMALL, "resources": {**SMALL["resources"], "train_runtime": 25}}
    log = run(tmp_path, config, MODEL_METRICS)
    [message] = [line for line in log.splitlines() if line.startswith("SLURM pre-flight: ")]
    assert re.match(r"SLURM pre-flight: group model_ls_[0-9a-f]{8} \(evaluate_detections, predict, train\) at "
                    r"attempt 2 of 2 \(a retry: `retries` of the profile; its time limit grows with the attempt\) "
                    r"asks for 1 CPU, 4000 MB, 1 GPU, 70 min; partition gpu allows 60 min: ", message), message
    assert message.endswith("a partition with a longer limit. Nothing was submitted."), message
    assert "submitted with SLURM jobid" not in log
    for name in re.findall(r"SLURM run ID: (\S+)", log):
        assert sacct(name=name) == []
