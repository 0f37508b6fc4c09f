# The jobs' compute resources: memory, time and device of pretrain/train/predict from the config's
# resources.*, the SLURM site settings per kind of job (the config's slurm section), the one SLURM job per
# model (a model's training, predictions and evaluation), and the SLURM pre-flight. Included right after
# common.smk: every stage's rules use these.
from snakemake.exceptions import WorkflowError

from multirater.core.errors import UserError
from multirater.slurm.site import SiteResources


def _runtime_per_attempt(minutes):
    # each retry (--retries; the slurm profile's `retries`) gets the limit once more, so a job killed
    # at its time limit comes back with more time (and a training resumes from its last.pt)
    def runtime(wildcards, attempt):
        return minutes * attempt

    return runtime


# A SLURM group job (profiles/slurm: a model's training, predictions and evaluation) has one slot
# (`resources: group_slots=1` there) and each grouped job takes it: members run one after another, so
# the group asks for its largest member's CPUs and memory, not their sum. Outside SLURM nothing
# limits group_slots.
GROUP_SLOT = {"group_slots": 1}


def evaluation_group(wildcards):
    """The group (one SLURM job) an evaluation runs in: a model's metrics, on every label set, join
    that model's job (profiles/slurm groups train and predict as model_<strategy>_<config_id>). The
    other evaluations (ensembles, calibrated detections) come after the members checkpoint; Snakemake
    9.27 mishandles groups the DAG updates after a checkpoint (duplicate submissions, stale requests,
    bundles growing past --group-components), so they run as jobs of their own. Groups matter only to
    cluster executors."""
    subject = wildcards.subject
    if subject.startswith("label_sets/"):
        subject = subject.split("/", 2)[2]
    kind, *names = subject.split("/")
    if kind == "models":
        strategy, config_id = names
        return f"model_{strategy}_{config_id}"
    return None


# --- SLURM site settings (config `slurm`, config/site.example.yaml; multirater.slurm.site): sbatch's
# partition, account, qos, constraint, GPUs and extra options per kind of job. A model's evaluation asks for
# what its model's SLURM job asks for. A command line that would split that job across partitions stops
# here: Snakemake's own grouping error comes before onstart and names neither the rules nor the fix.
try:
    SITE = SiteResources.of(config, workflow.resource_settings)
except UserError as _error:
    raise WorkflowError(str(_error)) from None
CPU_JOB, GPU_JOB = SITE.cpu, SITE.gpu
EVALUATION_JOB = SITE.evaluation(evaluation_group)


def _job_resources(kind):
    res = config["resources"]
    # device and batch size are resources, not params: changing them must not rerun finished jobs
    out = {
        "mem_mb": res[f"{kind}_mem_mb"],
        # a model's one prediction job predicts every split in SPLITS: the limit once per split
        "runtime": _runtime_per_attempt(
            res[f"{kind}_runtime"] * (len(SPLITS) if kind == "predict" else 1)
        ),
        "device": res["device"],
        **GROUP_SLOT,
        **GPU_JOB,
    }
    if kind == "predict":
        out["batch_size"] = config["prediction"]["batch_size"]
    else:  # auto: from the job's threads (multirater train --loader-workers)
        workers = res["loader_workers"]
        out["loader_workers"] = "auto" if workers is None else workers
    return out


TRAIN_RESOURCES = _job_resources("train")
PREDICT_RESOURCES = _job_resources("predict")


# --- SLURM pre-flight: before the first sbatch, every job's request against the nodes `sinfo` lists.
# A request no node of its partition can meet would sit PENDING forever with snakemake saying nothing.
onstart:
    _executor = workflow.executor_plugin
    if _executor is not None and _executor.name == "slurm":
        from snakemake.logging import logger
        from multirater.slurm.preflight import check_run

        try:
            check_run(workflow.dag, warn=logger.warning)
        except UserError as _error:
            raise WorkflowError(str(_error)) from None
