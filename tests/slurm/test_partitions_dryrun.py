"""A cluster with a CPU default partition and a GPU partition, planned by dry runs (no cluster needed: runs
under plain `make test`). Each way the documentation names the GPU partition plans, with a model's whole
SLURM job (training, predictions, evaluation) in the GPU partition and every other submitted job in the CPU
partition; a command line that would split a model's job is refused before Snakemake groups anything, with
one message naming the rules and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .slurm_helpers import local_rules, planned_resources, snakemake
from .test_slurm_workflow import REPO

NEEDS_CLUSTER = False

GPU_RULES = {"pretrain", "train", "predict"}
SITE_EXAMPLE = REPO / "config" / "site.example.yaml"


def dry_run(tmp_path: Path, *args: str) -> str:
    done = snakemake(tmp_path, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                     "--profile", str(REPO / "profiles" / "slurm"), *args, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    return log


def assert_partitions(log: str, cpu: str, gpu: str) -> None:
    """GPU rules and a model's evaluation (in its model's group) in `gpu`, every other submitted job in `cpu`."""
    local = local_rules(REPO)
    assert {"select", "members", "sweep_file"} <= local
    jobs = [job for job in planned_resources(log) if job[0] not in local]
    assert {rule for rule, _, _ in jobs} >= GPU_RULES | {"evaluate_detections", "fuse", "split"}, jobs[:5]
    for rule, group, resources in jobs:
        in_model_job = group is not None and group.startswith("model_")
        expected = gpu if rule in GPU_RULES or in_model_job else cpu
        assert resources.get("slurm_partition") == expected, (rule, group, resources)
        if in_model_job:
            assert rule in {"train", "predict", "evaluate_detections"}, (rule, group)
    groups = {group for _, group, _ in jobs if group}
    assert groups and all(group.startswith("model_") for group in groups), groups


def test_the_documented_command_with_the_site_file_plans_a_cpu_and_a_gpu_partition(tmp_path: Path) -> None:
    # config/site.example.yaml as shipped: partitions cpu and gpu; the targets before --configfile
    log = dry_run(tmp_path, "all", "--configfile", str(REPO / "config" / "paper.yaml"), str(SITE_EXAMPLE))
    assert_partitions(log, cpu="cpu", gpu="gpu")
    gpus = {resources.get("gpu") for rule, _, resources in planned_resources(log) if rule in GPU_RULES}
    assert gpus == {"1"}  # resources.device auto: one GPU per GPU job


@pytest.mark.parametrize("way", ["gpu_partition", "set-resources"])
def test_each_documented_way_of_naming_the_gpu_partition_plans_with_a_cpu_default(way: str, tmp_path: Path) -> None:
    if way == "gpu_partition":  # the README's command as issue 21 ran it, with resources.gpu_partition
        site = tmp_path / "my-site.yaml"
        site.write_text(yaml.safe_dump({"resources": {"gpu_partition": "gpu"}}))
        args = ["--configfile", str(REPO / "config" / "paper.yaml"), str(site), "--default-resources",
                "slurm_partition=cpu", "slurm_account=mylab"]
    else:
        args = ["--configfile", str(REPO / "config" / "config.yaml"), "--default-resources", "slurm_partition=cpu",
                "--set-resources", *(f"{rule}:slurm_partition=gpu" for rule in sorted(GPU_RULES))]
    assert_partitions(dry_run(tmp_path, *args), cpu="cpu", gpu="gpu")


@pytest.mark.parametrize("overrides, message", [
    (["train:slurm_partition=gpu"],
     "SLURM groups: train and predict run in one SLURM job per model (with the model's evaluate_detections: the "
     "`groups` of profiles/slurm), so they must ask for the same slurm_partition; train asks for 'gpu' "
     "(--set-resources train:slurm_partition), predict for 'cpu' (--default-resources slurm_partition)."),
    (["train:slurm_partition=gpu", "predict:slurm_partition=gpu", "evaluate_detections:slurm_partition=cpu"],
     "SLURM groups: --set-resources evaluate_detections:slurm_partition=cpu differs from what train asks for "
     "('gpu', --set-resources train:slurm_partition)"),
])
def test_a_command_line_that_splits_a_models_job_is_refused_at_parse_time(overrides: list[str], message: str,
                                                                          tmp_path: Path) -> None:
    done = snakemake(tmp_path, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                     "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                     str(REPO / "config" / "config.yaml"), "--default-resources", "slurm_partition=cpu",
                     "--set-resources", *overrides, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode != 0
    [line] = [line for line in log.splitlines() if line.startswith("SLURM groups: ")]
    assert line.startswith(message), line
    assert "Error grouping resources" not in log and "Building DAG" not in log
