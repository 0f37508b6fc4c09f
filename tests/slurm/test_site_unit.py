"""The site settings (the config's `slurm` section) as SLURM resources per kind of job, and the rule that a
model's SLURM job (train, predict, its evaluation) asks for one value of each string resource (no cluster
needed: runs under plain `make test`). Expected values are the sbatch options the plugin documents for each
resource, written out by hand."""

from __future__ import annotations

import pytest
from snakemake.resources import Resources

from multirater.config import SCHEMA_PATH
from multirater.config.schema import validate
from multirater.core.errors import UserError
from multirater.slurm.site import constant_values, kind_resources, model_job_resources, other_job_resources

NEEDS_CLUSTER = False


def config(slurm: dict | None = None, **resources: object) -> dict:
    return validate({"slurm": slurm or {}, "resources": resources}, SCHEMA_PATH)


def test_a_full_site_file_gives_each_kind_its_partition_account_qos_constraint_gpus_and_extra() -> None:
    site = config({"account": "lab", "qos": "normal",
                   "cpu": {"partition": "cpu", "constraint": "icelake", "extra": "--reservation=lab"},
                   "gpu": {"partition": "gpu", "qos": "gpu", "count": 2, "type": "a100", "constraint": "nvlink",
                           "extra": "--exclusive"}})
    assert kind_resources(site, "cpu") == {"slurm_partition": "cpu", "slurm_account": "lab", "qos": "normal",
                                           "constraint": "icelake", "slurm_extra": "--reservation=lab"}
    assert kind_resources(site, "gpu") == {"slurm_partition": "gpu", "slurm_account": "lab", "qos": "gpu",
                                           "constraint": "nvlink", "slurm_extra": "--exclusive", "gpu": 2,
                                           "gpu_model": "a100"}


def test_an_empty_site_file_sends_nothing_but_one_gpu_unless_the_jobs_run_on_the_cpu() -> None:
    assert kind_resources(config(), "cpu") == {}
    assert kind_resources(config(), "gpu") == {"gpu": 1}
    assert kind_resources(config(device="cpu"), "gpu") == {}
    assert kind_resources(config({"gpu": {"count": 1}}, device="cpu"), "gpu") == {"gpu": 1}


def test_the_gpu_partition_falls_back_to_the_older_key_then_to_the_cpu_jobs_partition() -> None:
    assert kind_resources(config(gpu_partition="gpu"), "gpu")["slurm_partition"] == "gpu"
    assert kind_resources(config({"cpu": {"partition": "all"}}), "gpu")["slurm_partition"] == "all"
    with pytest.raises(UserError) as error:
        kind_resources(config({"gpu": {"partition": "gpu"}}, gpu_partition="a100"), "gpu")
    assert str(error.value) == ("config: slurm.gpu.partition: 'gpu' while resources.gpu_partition says 'a100': "
                                "name the GPU partition once")


def test_gres_replaces_the_gpus_option_and_is_not_combined_with_it() -> None:
    assert kind_resources(config({"gpu": {"gres": "gpu:a100:1"}}), "gpu") == {"gres": "gpu:a100:1"}
    with pytest.raises(UserError, match=r"^config: slurm\.gpu\.gres: asks for GPUs with --gres"):
        kind_resources(config({"gpu": {"gres": "gpu:1", "count": 1}}), "gpu")
    with pytest.raises(UserError, match=r"^config: slurm\.gpu\.type: 'a100' with no GPU asked for"):
        kind_resources(config({"gpu": {"type": "a100", "count": 0}}), "gpu")
    with pytest.raises(UserError, match=r"^config: slurm\.gpu\.count: 0 while resources\.device is cuda"):
        kind_resources(config({"gpu": {"count": 0}}, device="cuda"), "gpu")


def test_command_line_resources_become_plain_values() -> None:
    parsed = Resources.parse(["slurm_partition=cpu", "slurm_account='lab'", "mem_mb=100",
                              "constraint=wildcards.x"], defaults="bare", allow_expressions=True)
    # the string resources only; one that needs a job's wildcards is unknown here
    assert constant_values(parsed) == {"slurm_partition": "cpu", "slurm_account": "lab"}


GPU = {"slurm_partition": "gpu", "gpu": 1}


@pytest.mark.parametrize("defaults, overrides, expected", [
    # a CPU default partition, the GPU partition in the site settings: the model's job goes to gpu
    ({"slurm_partition": "cpu", "slurm_account": "lab"}, {}, {"slurm_partition": "gpu", "slurm_account": "lab"}),
    # the same partition given to both grouped rules on the command line
    ({"slurm_partition": "cpu"}, {"train": {"slurm_partition": "a100"}, "predict": {"slurm_partition": "a100"}},
     {"slurm_partition": "a100"}),
    # other rules' overrides do not matter
    ({}, {"pretrain": {"slurm_partition": "big"}, "fuse": {"constraint": "x"}}, {"slurm_partition": "gpu"}),
])
def test_a_models_job_asks_for_what_its_training_asks_for(defaults, overrides, expected) -> None:
    assert model_job_resources(GPU, defaults, overrides) == expected


def test_train_and_predict_in_different_partitions_are_refused_naming_the_rules_and_the_fix() -> None:
    with pytest.raises(UserError) as error:
        model_job_resources({}, {"slurm_partition": "cpu"}, {"train": {"slurm_partition": "gpu"}})
    assert str(error.value) == (
        "SLURM groups: train and predict run in one SLURM job per model (with the model's evaluate_detections: "
        "the `groups` of profiles/slurm), so they must ask for the same slurm_partition; train asks for 'gpu' "
        "(--set-resources train:slurm_partition), predict for 'cpu' (--default-resources slurm_partition). Name "
        "it once for the GPU jobs: slurm.gpu.partition in a site file (config/site.example.yaml), or give both "
        "rules the same value (--set-resources train:slurm_partition=... predict:slurm_partition=...)")
    with pytest.raises(UserError, match="same constraint; train asks for none"):
        model_job_resources(GPU, {}, {"predict": {"constraint": "a100"}})


def test_an_evaluation_override_that_splits_a_models_job_is_refused() -> None:
    with pytest.raises(UserError, match=r"^SLURM groups: --set-resources evaluate_detections:slurm_partition=cpu "
                                        r"differs from what train asks for \('gpu'"):
        model_job_resources(GPU, {}, {"evaluate_detections": {"slurm_partition": "cpu"}})
    # the same value is no conflict
    assert model_job_resources(GPU, {}, {"evaluate_detections": {"slurm_partition": "gpu"}}) == \
        {"slurm_partition": "gpu"}


def test_other_evaluations_ask_for_the_cpu_jobs_settings_else_the_defaults() -> None:
    assert other_job_resources({"slurm_partition": "cpu"}, {"slurm_partition": "x", "slurm_account": "lab",
                                                            "mem_mb": 10}) == \
        {"slurm_partition": "cpu", "slurm_account": "lab"}
