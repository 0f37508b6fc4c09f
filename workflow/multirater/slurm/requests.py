"""What sbatch will be asked for one SLURM job, read from its snakemake resources the way
snakemake-executor-plugin-slurm builds the sbatch call (2.x): --cpus-per-task / --cpus-per-gpu,
--mem / --mem-per-cpu, --gpus / --gres, -t and -p."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from multirater.slurm.nodes import gpu_count


@dataclass(frozen=True)
class Request:
    """One SLURM job's request. ``partitions`` empty: the cluster's default partition."""

    what: str  # "rule train" or "group model_ls_1a2b3c4d (predict, train)"
    rules: tuple[str, ...]
    partitions: tuple[str, ...]
    cpus: int
    mem_mb: int | None
    gpus: int
    runtime_min: int | None
    attempt: int = 1  # a retry asks again, with the resources of its attempt (runtime grows with it)
    attempts: int = 1  # 1 + the retries the run allows

    def describe(self) -> str:
        """The request in words: ``2 CPUs, 4000 MB, 1 GPU, 60 min``."""
        parts = [_plural(self.cpus, "CPU")]
        parts.append(f"{self.mem_mb} MB" if self.mem_mb is not None else "no memory request")
        parts.append(_plural(self.gpus, "GPU"))
        parts.append(f"{self.runtime_min} min" if self.runtime_min is not None else "no time limit")
        return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _integer(value: object) -> int | None:
    # unevaluated resources (e.g. sizes of inputs that do not exist yet) are strings: unknown
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def requested_gpus(resources: Mapping[str, object]) -> int:
    """GPUs: the ``gpu`` resource (with or without ``gpu_model``), else a ``gpu`` entry of ``gres``."""
    gpu = _integer(resources.get("gpu"))
    if gpu:
        return gpu
    if resources.get("gpu_model"):
        return 1  # the plugin asks --gpus=MODEL:1 when only the model is given
    gres = resources.get("gres")
    return gpu_count(gres) if isinstance(gres, str) else 0


def requested_cpus(resources: Mapping[str, object], threads: int, gpus: int) -> int:
    """CPUs: ``cpus_per_task`` if set, else ``cpus_per_gpu`` x GPUs for a GPU job, else the threads."""
    per_task = _integer(resources.get("cpus_per_task"))
    if per_task is not None:
        return max(1, per_task)  # a negative value sends no CPU option: SLURM's default, one CPU
    per_gpu = _integer(resources.get("cpus_per_gpu"))
    if gpus and per_gpu is not None and per_gpu > 0:
        return per_gpu * gpus
    return max(1, threads)


def request_of(what: str, rules: tuple[str, ...], resources: Mapping[str, object], threads: int) -> Request:
    """The request of a job (or group job) with these evaluated resources and threads."""
    gpus = requested_gpus(resources)
    cpus = requested_cpus(resources, threads, gpus)
    per_cpu = _integer(resources.get("mem_mb_per_cpu"))
    mem_mb = per_cpu * cpus if per_cpu else _integer(resources.get("mem_mb"))
    partition = resources.get("slurm_partition")
    partitions = tuple(p.strip() for p in str(partition).split(",") if p.strip()) if partition else ()
    return Request(
        what=what,
        rules=tuple(sorted(rules)),
        partitions=partitions,
        cpus=cpus,
        mem_mb=mem_mb,
        gpus=gpus,
        runtime_min=_integer(resources.get("runtime")),
    )


def requests_of_run(dag: object) -> list[Request]:
    """One request per SLURM job snakemake is about to submit (its DAG before the first job runs), at
    the first attempt: a group job's request, not its members', and nothing for rules that run on the
    submitting node. Jobs that checkpoints add later are not in the DAG yet."""
    return [attempts[0] for attempts in attempt_requests_of_run(dag)]


def attempt_requests_of_run(dag: object) -> list[list[Request]]:
    """For each SLURM job of ``requests_of_run``, its request at every attempt the run allows (1 + its
    retries: `retries` of the profile, or the rule's own): a retry asks again, with the resources of its
    attempt (the workflow's time limits grow with it)."""
    units: dict[int, object] = {}  # the job or group job, by its id
    for job in dag.needrun_jobs():  # type: ignore[attr-defined]
        if job.is_local:
            continue
        unit = dag.get_job_group(job) or job  # type: ignore[attr-defined]
        units.setdefault(id(unit), unit)
    return [_attempts(unit) for unit in units.values()]


def _attempts(unit: object) -> list[Request]:
    if unit.is_group():  # type: ignore[attr-defined]
        rules = tuple(sorted({member.rule.name for member in unit.jobs}))  # type: ignore[attr-defined]
        what = f"group {unit.groupid} ({', '.join(rules)})"  # type: ignore[attr-defined]
    else:
        rules = (unit.rule.name,)  # type: ignore[attr-defined]
        what = f"rule {unit.rule.name}"  # type: ignore[attr-defined]
    attempts = 1 + (getattr(unit, "restart_times", 0) or 0)
    first = getattr(unit, "attempt", 1)
    out = []
    try:
        for attempt in range(1, attempts + 1):
            if attempt != first:
                unit.attempt = attempt  # type: ignore[attr-defined]  # Snakemake recomputes its resources
            request = request_of(what, rules, unit.resources, unit.threads)  # type: ignore[attr-defined]
            out.append(replace(request, attempt=attempt, attempts=attempts))
    finally:
        if getattr(unit, "attempt", first) != first:
            unit.attempt = first  # type: ignore[attr-defined]
    return out
