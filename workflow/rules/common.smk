# Configuration, parse-time facts (raters, configuration ids) and the helpers the rules share.
import re
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

from multirater.config import SCHEMA_PATH
from multirater.config.loading import load_workflow_config
from multirater.core.errors import UserError
from multirater.training.sweep import configs_tsv, pretrain_config, training_config

SCHEMA = SCHEMA_PATH
R = "results"
ENV = "../../envs/multirater.yaml"


def _yaml(data):
    return yaml.safe_dump(data, sort_keys=False)


try:
    _checked, RATERS, CONFIGS = load_workflow_config(dict(config), SCHEMA)
    # The training rules read one file per configuration, never the config itself; the file's text
    # is a params value of the rule writing it, so only a change of that model's own training
    # settings rewrites it and retrains the model (ensemble/evaluation settings never do).
    TRAINING_CONFIGS = {
        c["config_id"]: _yaml(training_config(_checked, c)) for c in CONFIGS
    }
    PRETRAIN_CONFIG = _yaml(pretrain_config(_checked))
    CONFIGS_TSV = configs_tsv(CONFIGS)
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


# --- the dataset --------------------------------------------------------------------------------
if MANIFEST is None:
    DATASET_INPUT = f"{R}/data/synthetic"  # a directory() output of the synth rule
    DATASET = f"{R}/data/synthetic/dataset.yaml"
    CONSENSUS = f"{R}/data/synthetic/consensus.json"
else:
    DATASET_INPUT = MANIFEST
    DATASET = MANIFEST
    _consensus = yaml.safe_load(Path(MANIFEST).read_text()).get("consensus")
    if not _consensus:
        raise WorkflowError(
            f"{MANIFEST}: consensus: missing; the test set needs consensus labels"
        )
    CONSENSUS = str(Path(MANIFEST).parent / _consensus)


# --- the base model -----------------------------------------------------------------------------
if BASE_CHECKPOINT is None:
    # The pretrain job's status is tracked; its checkpoint is not, so deleting checkpoints never
    # retrains (keep models/pretrain/best.pt if you will add configurations later).
    BASE_INPUT = f"{R}/models/pretrain/status.json"
    BASE = f"{R}/models/pretrain/best.pt"
else:
    BASE_INPUT = BASE_CHECKPOINT
    BASE = BASE_CHECKPOINT


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
        f"{R}/models/{{strategy}}/{{config_id}}/status.json",
        strategy=strategies or STRATEGIES,
        config_id=CONFIG_IDS,
    )


def prediction_files(split, strategies=None):
    return expand(
        f"{R}/predictions/{split}/{{strategy}}/{{config_id}}.json",
        strategy=strategies or STRATEGIES,
        config_id=CONFIG_IDS,
    )


def kind_strategies(kind):
    return ["ls"] if kind == "lse" else [f"rs-{r}" for r in RATERS]


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


# --- the apply target: which ensemble to build, and its members once selection is known ---------
APPLY = config["apply"]


def apply_ensemble():
    """(kind, size) of the apply target; one error naming the config key when it cannot be built."""
    if APPLY["images"] is None:
        raise WorkflowError(
            "config: apply.images: not set; name the folder of new images in a config file"
            " (apply: {images: DIR, kind: rse, size: 4}) or with --config apply='{images: DIR}'"
        )
    if not Path(APPLY["images"]).is_dir():
        raise WorkflowError(f"config: apply.images: {APPLY['images']}: no such folder")
    kind = APPLY["kind"]
    size = SIZES[-1] if APPLY["size"] is None else APPLY["size"]
    selected = config["selection"]["ls"] if kind == "lse" else config["selection"]["rs"]
    per_source = size if kind == "lse" else size // len(RATERS)
    if kind == "rse" and size % len(RATERS):
        raise WorkflowError(
            f"config: apply.size: {size} is not divisible by the number of raters"
            f" ({len(RATERS)}: {', '.join(RATERS)})"
        )
    if per_source > selected:
        key = "selection.ls" if kind == "lse" else "selection.rs"
        raise WorkflowError(
            f"config: apply.size: {kind.upper()}_{size} needs {per_source} selected models"
            f" per source but only {selected} are selected ({key})"
        )
    return kind, size


def apply_counts(wildcards):
    kind, size = apply_ensemble()
    return f"{R}/apply/{kind}-{size}/counts.csv"


def apply_member_predictions(wildcards):
    members = checkpoints.apply_members.get(**wildcards).output.members
    return Path(members).read_text().split()
