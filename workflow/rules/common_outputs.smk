# Shared by the rules: the file lists, the calibration's approaches and variants, what is evaluated,
# and every output of `all`.
import re

from snakemake.exceptions import WorkflowError

from multirater.calibration.approach_files import ApproachFiles
from multirater.calibration.approaches import (
    approach_names,
    check_calibration,
    variant_names,
)
from multirater.core.errors import UserError
from multirater.ensembles.files import TEST as TEST_STAGE
from multirater.ensembles.files import fused_file


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
        stage=TEST_STAGE, kind=kind, size=max(SIZES)
    ).output[0],
)
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
        f"ensembles/{k}/{n}": fused_file(R, TEST_STAGE, k, n)
        for k in KINDS
        for n in SIZES
    },
    # the selected configurations' replicates (the tables read those the pool names)
    **{
        f"models/{s}/{rid}": f"{R}/predictions/test/{s}/{rid}.json"
        for s in STRATEGIES
        for rid in REPLICATE_IDS
    },
    **CALIBRATED_DETECTIONS,
}
EVALUATED_SUBJECT = "|".join(
    [
        "models/({})/[0-9a-f]{{8}}".format("|".join(re.escape(s) for s in STRATEGIES)),
        "ensembles/({})/[0-9]+".format("|".join(KINDS)),
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
    and subject.rsplit("/", 1)[-1] not in REPLICATE_IDS
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


FUSED = expand(fused_file(R, TEST_STAGE, "{kind}", "{size}"), kind=KINDS, size=SIZES)
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


# Where the run ran, and the report front page's text (report.smk).
RUN_RECORD = f"{R}/run.json"
FINDINGS = f"{R}/report/findings.rst"
# Synthetic data only: the selected models' scores on the objects one rater labelled (learned_bias rule).
LEARNED_BIAS = [f"{R}/tables/learned_bias.csv"] if MANIFEST is None else []

ALL_OUTPUTS = [
    RUN_RECORD,
    FINDINGS,
    f"{R}/sweep/configs.tsv",
    f"{R}/data/splits.json",
    f"{R}/selection/selection.csv",
    *[prediction_files(split) for split in SPLITS],
    *FIGURES,
    *TABLES,
    *LEARNED_BIAS,
    *CALIBRATION_OUTPUTS,
]
