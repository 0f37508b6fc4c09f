# Configuration, parse-time facts (raters, configuration ids) and the helpers the rules share.
import re
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from multirater.calibration.approach_files import ApproachFiles
from multirater.calibration.approaches import (
    approach_names,
    check_calibration,
    headline,
    variant_names,
)
from multirater.config import SCHEMA_PATH
from multirater.config.loading import apply_ensemble, load_workflow_config
from multirater.core.errors import UserError
from multirater.data.consensus import MAJORITY, majority_note, majority_voters
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
    _checked, RATERS, CONFIGS = load_workflow_config(
        dict(config), SCHEMA_PATH, check_files=True
    )
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
BASE_MANIFEST = config["dataset"]["base_manifest"]


wildcard_constraints:
    strategy="|".join(re.escape(s) for s in STRATEGIES),
    config_id="[0-9a-f]{8}",
    split="val|test",
    kind="lse|rse",
    size="[0-9]+",
    # where an ensemble lies: the experiment's (test set) or the apply target's (new images)
    stage="ensembles|apply|val_ensembles",


# --- the dataset and its test label sets ---------------------------------------------------------
# Every test label set is ground truth of its own: name -> COCO file, "consensus" first when there is
# one. The headline label set (evaluation.label_set, resolved and checked with the config above) is
# the one of the headline metrics, tables and figures; the others are evaluated beside it.
if MANIFEST is None:
    DATASET_INPUT = f"{R}/data/synthetic"  # a directory() output of the synth rule
    DATASET = f"{R}/data/synthetic/dataset.yaml"
    LABEL_SET_FILES = {"consensus": f"{R}/data/synthetic/consensus.json"}
else:
    DATASET_INPUT = MANIFEST
    DATASET = MANIFEST
    try:
        LABEL_SET_FILES = {
            name: str(path)
            for name, path in read_manifest(MANIFEST).label_set_files.items()
        }
    except UserError as _error:
        raise WorkflowError(str(_error)) from None
# No consensus: the majority of the test label sets (each rater's own labels of the test images) stands in
# for it, derived by the majority rule (data.smk) as the label set "majority" (the config check above
# resolved evaluation.label_set to it already, multirater.config.loading.headline_label_set).
MAJORITY_VOTERS = majority_voters(list(LABEL_SET_FILES))
DERIVED_LABEL_SETS = {MAJORITY: f"{R}/data/majority.json"} if MAJORITY_VOTERS else {}
LABEL_SET_FILES.update(DERIVED_LABEL_SETS)
LABEL_SETS = list(LABEL_SET_FILES)
HEADLINE_LABEL_SET = config["evaluation"]["label_set"]
HEADLINE_GT = LABEL_SET_FILES[HEADLINE_LABEL_SET]
if MAJORITY_VOTERS:
    logger.info(
        majority_note(MANIFEST, MAJORITY_VOTERS, LABEL_SET_FILES, HEADLINE_LABEL_SET)
    )


def label_set_input(label_set):
    """A label set's file as a job's input when the workflow writes it (the derived majority), else none:
    the manifest's files exist already (and the synthetic consensus lies inside a directory() output).
    """
    return [LABEL_SET_FILES[label_set]] if label_set in DERIVED_LABEL_SETS else []


CONSENSUS = HEADLINE_GT  # the name calibration.smk reads the headline ground truth by


# --- the base model -----------------------------------------------------------------------------
if BASE_CHECKPOINT is None:
    # The pretrain job's status is tracked; its checkpoint is not, so deleting checkpoints never
    # retrains (keep models/pretrain/best.pt if you will add configurations later).
    BASE_INPUT = f"{R}/models/pretrain/status.json"
    BASE = f"{R}/models/pretrain/best.pt"
    # The pretrain job learns from a dataset of its own, never the experiment's labels: the user's
    # dataset.base_manifest, or generated images labelled by the simulated detector (synth_base).
    # (With the user's own data and neither, the config check above has stopped the run.)
    if BASE_MANIFEST is None:
        # a directory() output of the synth_base rule
        BASE_DATASET_INPUT = f"{R}/data/base"
        BASE_DATASET = f"{R}/data/base/dataset.yaml"
    else:
        BASE_DATASET_INPUT = BASE_MANIFEST
        BASE_DATASET = BASE_MANIFEST
    BASE_SPLITS = f"{R}/data/base_splits.json"
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


# --- calibration (calibration.smk): each approach (the best ls model, the best rs model of each rater,
# the largest lse and rse) uncalibrated and after each calibrator (method-target), on the test set -----
CALIBRATION = config["calibration"]
try:
    check_calibration(config, RATERS)
except UserError as _error:
    raise WorkflowError(str(_error)) from None
APPROACHES = approach_names(RATERS) if CALIBRATION["enabled"] else []
VARIANTS = variant_names(CALIBRATION["methods"], CALIBRATION["targets"])
CALIBRATED_VARIANTS = VARIANTS[1:]  # all but "uncalibrated"
# Where each approach's files lie; a single model's is read from the largest ensemble's members file.
APPROACH_FILES = ApproachFiles(
    R,
    max(SIZES),
    lambda kind: checkpoints.members.get(
        stage="ensembles", kind=kind, size=max(SIZES)
    ).output[0],
)
if CALIBRATION["enabled"]:
    # calibrators are fitted on validation detections
    SPLITS = sorted(set(SPLITS) | {"val"})
# Calibrated test detections, evaluated like every other detections file (evaluate_detections).
CALIBRATED_DETECTIONS = {
    f"calibration/{a}/{v}": f"{R}/calibration/{a}/{v}/test.json"
    for a in APPROACHES
    for v in CALIBRATED_VARIANTS
}
CALIBRATION_OUTPUTS = (
    [
        f"{R}/tables/calibration.csv",
        f"{R}/figures/fig5_calibration_cost.png",
        f"{R}/figures/fig5_calibration_cost.pdf",
    ]
    if CALIBRATION["enabled"]
    else []
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
    **CALIBRATED_DETECTIONS,
}
EVALUATED_SUBJECT = "|".join(
    [
        "models/({})/[0-9a-f]{{8}}".format("|".join(re.escape(s) for s in STRATEGIES)),
        "ensembles/(lse|rse)/[0-9]+",
        *map(re.escape, CALIBRATED_DETECTIONS),
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
# The headline label set's metrics lie in metrics/<subject>.json; every other label set's in
# metrics/label_sets/<name>/<subject>.json (a dataset with one label set evaluates nothing more).
# The models and ensembles are evaluated on every label set; calibrated detections on the headline only.
OTHER_LABEL_SETS = [s for s in LABEL_SETS if s != HEADLINE_LABEL_SET]
LABEL_SET_METRICS = [
    f"{R}/metrics/label_sets/{label_set}/{subject}.json"
    for label_set in OTHER_LABEL_SETS
    for subject in EVALUATED
    if subject.startswith(("models/", "ensembles/"))
]
LABELLED_SUBJECT = (
    "(label_sets/({})/)?({})".format(
        "|".join(map(re.escape, OTHER_LABEL_SETS)), EVALUATED_SUBJECT
    )
    if OTHER_LABEL_SETS
    else EVALUATED_SUBJECT
)


def subject_label_set(subject):
    """(label set, detections subject) of a metrics subject, e.g. label_sets/t0/models/ls/<id>."""
    if subject.startswith("label_sets/"):
        _prefix, label_set, detections = subject.split("/", 2)
        return label_set, detections
    return HEADLINE_LABEL_SET, subject


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
        "label_sets.csv",
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
    *CALIBRATION_OUTPUTS,
]


# --- ensembles: members are known once selection.csv exists (the members rule is a checkpoint) ----
# Where the members' detections lie: the test predictions, or the apply target's folder predictions.
MEMBER_DETECTIONS = {
    "ensembles": f"{R}/predictions/test",
    "apply": f"{R}/apply/predictions",
    "val_ensembles": f"{R}/predictions/val",  # the same ensembles on validation (calibration)
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
    if CALIBRATION["enabled"]:
        # the calibrated headline approach (calibration.smk); apply.kind and apply.size are not used
        approach, variant = headline(config)
        return f"{R}/apply/{approach}/{variant}/counts.csv"
    return f"{R}/apply/{kind}/{size}/counts.csv"
