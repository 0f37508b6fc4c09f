# Configuration, parse-time facts (raters, configuration ids) and the helpers the rules share.
import re
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from multirater.config import SCHEMA_PATH
from multirater.config.loading import apply_ensemble, load_workflow_config
from multirater.core.errors import UserError
from multirater.data.manifest import read_manifest
from multirater.selection.members import read_members
from multirater.training.sweep import configs_tsv, pretrain_config, training_config

R = "results"
ENV = "../../envs/multirater.yaml"


def _yaml(data):
    return yaml.safe_dump(data, sort_keys=False)


try:
    # Snakemake's validate(config, schema) checks every key, the schema's defaults are filled in, and
    # the cross-key rules follow (multirater.config.loading): a bad config is one line naming the key.
    _checked, RATERS, CONFIGS = load_workflow_config(dict(config), SCHEMA_PATH)
    # The files of results/sweep/, by name. The training rules read one file per configuration, never
    # the config itself; the file's text is a params value of the rule writing it, so only a change of
    # that model's own training settings rewrites it and retrains the model.
    SWEEP_FILES = {
        "configs.tsv": configs_tsv(CONFIGS),
        "pretrain.yaml": _yaml(pretrain_config(_checked)),
        **{
            f"configs/{c['config_id']}.yaml": _yaml(training_config(_checked, c))
            for c in CONFIGS
        },
    }
except UserError as _error:
    raise WorkflowError(str(_error)) from None

config.clear()
config.update(_checked)

CONFIG_IDS = [c["config_id"] for c in CONFIGS]
STRATEGIES = ["ls"] + [f"rs-{r}" for r in RATERS]
KINDS = ["lse", "rse"]
SIZES = sorted(config["ensembles"]["sizes"])
SPLITS = sorted(set(config["prediction"]["splits"]) | {"test"})
MANIFEST = config["dataset"]["manifest"]
BASE_CHECKPOINT = (config["model"] or {}).get("base_checkpoint")


wildcard_constraints:
    strategy="|".join(re.escape(s) for s in STRATEGIES),
    config_id="[0-9a-f]{8}",
    split="val|test",
    kind="lse|rse",
    size="[0-9]+",
    # where an ensemble lies: the experiment's (test set) or the apply target's (new images)
    stage="ensembles|apply",


# --- the dataset --------------------------------------------------------------------------------
if MANIFEST is None:
    DATASET_INPUT = f"{R}/data/synthetic"  # a directory() output of the synth rule
    DATASET = f"{R}/data/synthetic/dataset.yaml"
    CONSENSUS = f"{R}/data/synthetic/consensus.json"
else:
    DATASET_INPUT = MANIFEST
    DATASET = MANIFEST
    try:
        _consensus = read_manifest(MANIFEST).consensus_file
    except UserError as _error:
        raise WorkflowError(str(_error)) from None
    if _consensus is None:
        raise WorkflowError(
            f"{MANIFEST}: consensus: missing; the test set needs consensus labels"
        )
    CONSENSUS = str(_consensus)


# --- the base model -----------------------------------------------------------------------------
if BASE_CHECKPOINT is None:
    # The pretrain job's status is tracked; its checkpoint is not, so deleting checkpoints never
    # retrains (keep models/pretrain/best.pt if you will add configurations later).
    BASE_INPUT = f"{R}/models/pretrain/status.json"
    BASE = f"{R}/models/pretrain/best.pt"
else:
    BASE_INPUT = BASE_CHECKPOINT
    BASE = BASE_CHECKPOINT

# One model's folder (status.json, best.pt, last.pt, metrics.csv).
MODEL_DIR = f"{R}/models/{{strategy}}/{{config_id}}"


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


# --- resources ----------------------------------------------------------------------------------
def _runtime_per_attempt(minutes):
    # each retry (--retries; the slurm profile's `retries`) gets the limit once more, so a job killed
    # at its time limit comes back with more time (and a training resumes from its last.pt)
    def runtime(wildcards, attempt):
        return minutes * attempt

    return runtime


def _job_resources(kind):
    res = config["resources"]
    # device and batch size are resources, not params: changing them must not rerun finished jobs
    out = {
        "mem_mb": res[f"{kind}_mem_mb"],
        "runtime": _runtime_per_attempt(res[f"{kind}_runtime"]),
        "device": res["device"],
    }
    if kind == "predict":
        out["batch_size"] = config["prediction"]["batch_size"]
    if res["gpu_partition"]:
        out["slurm_partition"] = res["gpu_partition"]
    return out


TRAIN_RESOURCES = _job_resources("train")
PREDICT_RESOURCES = _job_resources("predict")


# --- file lists ---------------------------------------------------------------------------------
def status_files(strategies=None):
    return expand(
        f"{MODEL_DIR}/status.json",
        strategy=strategies or STRATEGIES,
        config_id=CONFIG_IDS,
    )


def prediction_files(split, strategies=None):
    return expand(
        f"{R}/predictions/{split}/{{strategy}}/{{config_id}}.json",
        strategy=strategies or STRATEGIES,
        config_id=CONFIG_IDS,
    )


# The detections each metrics file measures: metrics/<subject>.json <- its detections file.
EVALUATED = {
    **{
        f"models/{s}/{c}": f"{R}/predictions/test/{s}/{c}.json"
        for s in STRATEGIES
        for c in CONFIG_IDS
    },
    **{
        f"ensembles/{k}/{n}": f"{R}/ensembles/{k}/{n}/fused.json"
        for k in KINDS
        for n in SIZES
    },
}
EVALUATED_SUBJECT = "|".join(
    [
        "models/({})/[0-9a-f]{{8}}".format("|".join(re.escape(s) for s in STRATEGIES)),
        "ensembles/(lse|rse)/[0-9]+",
    ]
)
MODEL_METRICS = expand(
    f"{R}/metrics/models/{{strategy}}/{{config_id}}.json",
    strategy=STRATEGIES,
    config_id=CONFIG_IDS,
)
ENSEMBLE_METRICS = expand(
    f"{R}/metrics/ensembles/{{kind}}/{{size}}.json", kind=KINDS, size=SIZES
)
FUSED = expand(f"{R}/ensembles/{{kind}}/{{size}}/fused.json", kind=KINDS, size=SIZES)
TABLES = [
    f"{R}/tables/{name}"
    for name in (
        "metrics.csv",
        "table1.csv",
        "table1.md",
        "table1.tex",
        "significance.csv",
        "lse_vs_rse.csv",
    )
]
FIGURES = expand(
    f"{R}/figures/{{stem}}.{{ext}}",
    stem=[
        "fig1_rater_agreement",
        "fig2_interrater",
        "fig3_reliability",
        "fig4_ensemble_size",
    ],
    ext=["png", "pdf"],
)


def evaluation_args():
    """The `multirater evaluate` options; a params value, so changing any re-evaluates."""
    ev = config["evaluation"]
    args = [
        "--iou",
        *map(str, ev["iou"]),
        f"--bins {ev['bins']}",
        f"--matching {ev['matching']}",
        f"--max-dets {ev['max_dets']}",
        f"--bootstrap {ev['bootstrap']}",
        f"--seed {ev['seed']}",
    ]
    if ev["dece_features"]:
        args += ["--dece-features", *ev["dece_features"]]
    return " ".join(args)


ALL_OUTPUTS = [
    f"{R}/sweep/configs.tsv",
    f"{R}/data/splits.json",
    f"{R}/selection/selection.csv",
    *[prediction_files(split) for split in SPLITS],
    *FIGURES,
    *TABLES,
]


# --- ensembles: members are known once selection.csv exists (the members rule is a checkpoint) ----
# Where the members' detections lie: the test predictions, or the apply target's folder predictions.
MEMBER_DETECTIONS = {
    "ensembles": f"{R}/predictions/test",
    "apply": f"{R}/apply/predictions",
}


def member_detections(wildcards):
    """The detections files the members file of this ensemble names (read after the checkpoint ran)."""
    members = checkpoints.members.get(**wildcards).output[0]
    return [m["detections"] for m in read_members(members)["members"]]


# --- the apply target: which ensemble to build, on which folder of new images -------------------
APPLY = config["apply"]


def apply_counts(wildcards):
    try:
        kind, size = apply_ensemble(config, RATERS)
    except UserError as error:
        raise WorkflowError(str(error)) from None
    return f"{R}/apply/{kind}/{size}/counts.csv"
