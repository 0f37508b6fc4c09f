# Shared by the rules: params derived from a rule's own files, the jobs' resources and the SLURM
# pre-flight.
from pathlib import Path

from snakemake.exceptions import WorkflowError

from multirater.core.errors import UserError


# --- params derived from a rule's own files (commands that take a folder or a file stem) ---------
def _pick(files, key):
    return getattr(files, key) if isinstance(key, str) else files[key]


def output_folder(key=0):
    """Params function: the folder of the rule's output ``key`` (a name or an index)."""
    return lambda wildcards, output: str(Path(_pick(output, key)).parent)


def input_folder(key):
    """Params function: the folder of the rule's input ``key`` (e.g. a model's, from its status.json)."""
    return lambda wildcards, input: str(Path(_pick(input, key)).parent)


def output_stem(key):
    """Params function: output ``key`` without its suffix (a figure command writes STEM.png and STEM.pdf)."""
    return lambda wildcards, output: str(Path(_pick(output, key)).with_suffix(""))


def dataset_file(dataset_input=DATASET_INPUT, generated=MANIFEST is None):
    """Params function: the dataset.yaml of a dataset input: inside the folder when the workflow generated
    the dataset (``generated``; the base dataset: BASE_MANIFEST is None), else the user's file itself.

    A function of the wildcards: Snakemake records its value with the job, as it did the plain path this
    replaced (a function of ``input`` would not be recorded, and results made before would rerun), and
    --lint no longer sees a param repeating an input's path (a user's manifest is both).
    """
    path = f"{dataset_input}/dataset.yaml" if generated else dataset_input
    return lambda wildcards: path


def base_weights(wildcards):
    """Params function: the base model's weights: the pretrain job's best.pt beside its status.json (BASE_INPUT),
    or the configured base checkpoint itself (recorded with the job, as ``dataset_file``).
    """
    return (
        str(Path(BASE_INPUT).with_name("best.pt"))
        if BASE_CHECKPOINT is None
        else BASE_CHECKPOINT
    )


# --- resources ----------------------------------------------------------------------------------
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


def _job_resources(kind):
    res = config["resources"]
    # device and batch size are resources, not params: changing them must not rerun finished jobs
    out = {
        "mem_mb": res[f"{kind}_mem_mb"],
        "runtime": _runtime_per_attempt(res[f"{kind}_runtime"]),
        "device": res["device"],
        **GROUP_SLOT,
    }
    if kind == "predict":
        out["batch_size"] = config["prediction"]["batch_size"]
    else:  # auto: from the job's threads (multirater train --loader-workers)
        workers = res["loader_workers"]
        out["loader_workers"] = "auto" if workers is None else workers
    if res["gpu_partition"]:
        out["slurm_partition"] = res["gpu_partition"]
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
