"""A SLURM site's settings (the workflow config's ``slurm`` section; config/site.example.yaml) as the
resources snakemake-executor-plugin-slurm turns into sbatch options, per kind of job: the GPU jobs
(pretrain, train, predict, apply's predictions) and the CPU jobs (every other rule that is submitted).

And the one rule that grouping adds: profiles/slurm runs a model's training, its predictions and its
evaluation in one SLURM job, and Snakemake refuses a group whose jobs ask for different values of a
string resource (partition, account, ...). So a model's evaluation asks for what its training asks for,
and a command line that gives train and predict different values is refused here, at parse time, before
Snakemake builds its groups (its own message names neither the rules nor the fix)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multirater.core.errors import UserError

KINDS = ("cpu", "gpu")
GPU_RULES = ("pretrain", "train", "predict", "apply_predict")
# The rules of a model's SLURM job (profiles/slurm `groups`; evaluate_detections joins through
# evaluation_group in workflow/rules/resources.smk).
MODEL_RULES = ("train", "predict", "evaluate_detections")
# Resources the plugin reads as strings: every job of a group must ask for the same value of each.
STRING_KEYS = ("slurm_partition", "slurm_account", "qos", "constraint", "gpu_model", "gres", "slurm_extra")
# per-kind key of the site file -> the plugin's resource
_KIND_KEYS = {"partition": "slurm_partition", "account": "slurm_account", "qos": "qos",
              "constraint": "constraint", "extra": "slurm_extra"}
SITE_EXAMPLE = "config/site.example.yaml"


def gpu_partition(config: Mapping[str, Any], file: str = "config") -> str | None:
    """The GPU jobs' partition: ``slurm.gpu.partition``, or the older ``resources.gpu_partition``."""
    site = config["slurm"]["gpu"]["partition"]
    older = config["resources"]["gpu_partition"]
    if site is not None and older is not None and site != older:
        raise UserError(f"{site!r} while resources.gpu_partition says {older!r}: name the GPU partition once",
                        file, "slurm.gpu.partition")
    return site if site is not None else older


def gpu_count(config: Mapping[str, Any]) -> int:
    """GPUs per GPU job: ``slurm.gpu.count``; by default 1, or none when the jobs run on the CPU."""
    count = config["slurm"]["gpu"]["count"]
    if count is not None:
        return int(count)
    return 0 if config["resources"]["device"] == "cpu" else 1


def kind_resources(config: Mapping[str, Any], kind: str, file: str = "config") -> dict[str, str | int]:
    """The SLURM resources of one kind of job from the site settings; a setting left null is left out
    (the profile's --default-resources, else SLURM's default, applies)."""
    slurm = config["slurm"]
    section = slurm[kind]
    values: dict[str, Any] = {key: section[key] for key in _KIND_KEYS}
    for shared in ("account", "qos"):  # the kind's own value, else the one for every job
        if values[shared] is None:
            values[shared] = slurm[shared]
    if kind == "gpu":
        own = gpu_partition(config, file)
        values["partition"] = own if own is not None else slurm["cpu"]["partition"]
    out: dict[str, str | int] = {_KIND_KEYS[key]: value for key, value in values.items() if value is not None}
    if kind == "gpu":
        out.update(_gpu_request(config, file))
    return out


def _gpu_request(config: Mapping[str, Any], file: str) -> dict[str, str | int]:
    """``gpu`` (and ``gpu_model``: sbatch --gpus=[TYPE:]N), or ``gres`` (sbatch --gres=...) instead."""
    gpu = config["slurm"]["gpu"]
    if gpu["gres"] is not None:
        if gpu["count"] is not None or gpu["type"] is not None:
            raise UserError("asks for GPUs with --gres; slurm.gpu.count and slurm.gpu.type ask with --gpus: give "
                            "one of the two", file, "slurm.gpu.gres")
        return {"gres": gpu["gres"]}
    count = gpu_count(config)
    if count == 0 and config["resources"]["device"] == "cuda":
        raise UserError("0 while resources.device is cuda: the GPU jobs would find no GPU", file, "slurm.gpu.count")
    if count == 0:
        if gpu["type"] is not None:
            raise UserError(f"{gpu['type']!r} with no GPU asked for (slurm.gpu.count 0, or resources.device cpu)",
                            file, "slurm.gpu.type")
        return {}
    return {"gpu": count, **({"gpu_model": gpu["type"]} if gpu["type"] is not None else {})}


def constant_values(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """The STRING_KEYS of Snakemake's parsed --default-resources or of one rule's --set-resources, as
    plain values; a value that needs a job to be computed (an expression of input, ...) is left out."""
    out: dict[str, Any] = {}
    for name, resource in (resources or {}).items():
        if name not in STRING_KEYS:
            continue
        value = _constant(name, resource)
        if value is not None:
            out[name] = value
    return out


def _constant(name: str, resource: Any) -> Any:
    from snakemake.resources import Resource

    if not isinstance(resource, Resource):
        return resource if isinstance(resource, (str, int)) else None
    if not resource.is_evaluable():
        return resource.value
    if not isinstance(resource.raw, str):
        return None
    try:  # a command-line value is a Python expression, else a plain string (as Snakemake reads it)
        value = Resource.cli_evaluator(name, resource.raw, wildcards={}, input=[], attempt=1, threads=1,
                                       async_run=None)
    except Exception:  # noqa: BLE001 - it needs a job's context: unknown here
        return None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _where(rule: str, key: str, own: Mapping[str, Any], defaults: Mapping[str, Any],
           overrides: Mapping[str, Mapping[str, Any]]) -> tuple[Any, str]:
    """(value, where it comes from) of one string resource of one rule."""
    if key in overrides.get(rule, {}):
        return overrides[rule][key], f"--set-resources {rule}:{key}"
    if key in own:
        return own[key], "the workflow config (slurm section)"
    if key in defaults:
        return defaults[key], f"--default-resources {key}"
    return None, "not set"


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value)


def model_job_resources(gpu: Mapping[str, Any], defaults: Mapping[str, Any],
                        overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The string resources of a model's SLURM job: what train asks for (the GPU jobs' site settings,
    --default-resources, --set-resources, as Snakemake applies them). Raises one UserError when predict,
    or an --set-resources of evaluate_detections, asks for something else."""
    job: dict[str, Any] = {}
    for key in STRING_KEYS:
        value, source = _where("train", key, gpu, defaults, overrides)
        other, other_source = _where("predict", key, gpu, defaults, overrides)
        if value != other:
            raise UserError(
                f"train and predict run in one SLURM job per model (with the model's evaluate_detections: the "
                f"`groups` of profiles/slurm), so they must ask for the same {key}; train asks for {_shown(value)} "
                f"({source}), predict for {_shown(other)} ({other_source}). Name it once for the GPU jobs: "
                f"slurm.gpu.{_site_key(key)} in a site file ({SITE_EXAMPLE}), or give both rules the same value "
                f"(--set-resources train:{key}=... predict:{key}=...)", item="SLURM groups")
        if key in overrides.get("evaluate_detections", {}) and overrides["evaluate_detections"][key] != value:
            raise UserError(
                f"--set-resources evaluate_detections:{key}={overrides['evaluate_detections'][key]} differs from "
                f"what train asks for ({_shown(value)}, {source}), and a model's evaluation runs in the model's "
                "SLURM job (the `groups` of profiles/slurm): leave evaluate_detections out of --set-resources "
                "(a model's evaluation asks for what its training asks for; the others for what the CPU jobs ask "
                "for)", item="SLURM groups")
        if value is not None:
            job[key] = value
    return job


def _site_key(resource: str) -> str:
    names = {resource: key for key, resource in _KIND_KEYS.items()}
    names.update({"gpu_model": "type", "gres": "gres"})
    return names.get(resource, resource)


def other_job_resources(cpu: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The string resources of a CPU job that sets no SLURM resource of its own (e.g. an ensemble's
    evaluation): the CPU jobs' site settings, else --default-resources."""
    out = {key: defaults[key] for key in STRING_KEYS if key in defaults}
    out.update({key: value for key, value in cpu.items() if key in STRING_KEYS})
    return out


@dataclass(frozen=True)
class SiteResources:
    """What the workflow's rules ask SLURM for besides CPUs, memory and time."""

    cpu: dict[str, Any]  # the CPU jobs' resources
    gpu: dict[str, Any]  # the GPU jobs' resources
    model_job: dict[str, Any]  # the string resources of a model's SLURM job (its training's)
    other_job: dict[str, Any]  # those of a CPU job that sets none itself (an ensemble's evaluation)

    @classmethod
    def of(cls, config: Mapping[str, Any], resource_settings: Any) -> SiteResources:
        """From the workflow config and Snakemake's --default-resources and --set-resources (its
        ``workflow.resource_settings``, known at parse time); UserError when a model's job would split."""
        cpu, gpu = kind_resources(config, "cpu"), kind_resources(config, "gpu")
        defaults = constant_values(resource_settings.default_resources)
        overrides = {rule: constant_values(values) for rule, values in resource_settings.overwrite_resources.items()}
        return cls(cpu, gpu, model_job_resources(gpu, defaults, overrides), other_job_resources(cpu, defaults))

    def evaluation(self, model_group: Callable[[Any], str | None]) -> dict[str, Callable[[Any], Any]]:
        """The string resources of evaluate_detections, as functions of a job's wildcards: a model's
        evaluation (``model_group`` names its group) asks for its model's job's, the others for the CPU jobs'."""

        def value(key: str) -> Callable[[Any], Any]:
            return lambda wildcards: (self.model_job if model_group(wildcards) else self.other_job).get(key)

        return {key: value(key) for key in {**self.model_job, **self.other_job}}
