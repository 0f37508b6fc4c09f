# Shared by the rules: the dataset, its test label sets and the base model (inputs of the stages).
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from multirater.core.errors import UserError
from multirater.data.consensus import MAJORITY, majority_note, majority_voters
from multirater.data.manifest import read_manifest
from multirater.workflow_config import label_set_names

# --- the dataset and its test label sets ---------------------------------------------------------
# Every test label set is ground truth of its own: name -> COCO file, "consensus" first when there is
# one. The headline label set (evaluation.label_set, resolved and checked with the config above) is
# the one of the headline metrics, tables and figures; the others are evaluated beside it.
if MANIFEST is None:
    # a directory() output of the synth rule; dataset_file gives the rules its dataset.yaml
    DATASET_INPUT = f"{R}/data/synthetic"
    # the consensus, and each rater's own test labels when written (dataset.synthetic.rater_test_labels)
    LABEL_SET_FILES = {
        name: f"{R}/data/synthetic/{name}.json" for name in label_set_names(config)
    }
else:
    DATASET_INPUT = MANIFEST
    try:
        LABEL_SET_FILES = {
            name: str(path)
            for name, path in read_manifest(MANIFEST).label_set_files.items()
        }
    except UserError as _error:
        raise WorkflowError(str(_error)) from None
# No consensus: the majority of the test label sets (each rater's own labels of the test images) stands in
# for it, derived by the majority rule (data.smk) as the label set "majority" (the config check above
# resolved evaluation.label_set to it already, multirater.workflow_config.headline_label_set).
MAJORITY_VOTERS = majority_voters(list(LABEL_SET_FILES))
DERIVED_LABEL_SETS = {MAJORITY: f"{R}/data/majority.json"} if MAJORITY_VOTERS else {}
LABEL_SET_FILES.update(DERIVED_LABEL_SETS)
LABEL_SETS = list(LABEL_SET_FILES)
HEADLINE_LABEL_SET = config["evaluation"]["label_set"]
HEADLINE_GT = LABEL_SET_FILES[HEADLINE_LABEL_SET]
# The label sets of D-ECE-soft (evaluation.soft_label_sets, resolved with the config): the headline
# evaluations add D-ECE-soft against the share of them a detection matches.
SOFT_GT = [LABEL_SET_FILES[name] for name in config["evaluation"]["soft_label_sets"]]
if MAJORITY_VOTERS:
    logger.info(
        majority_note(MANIFEST, MAJORITY_VOTERS, LABEL_SET_FILES, HEADLINE_LABEL_SET)
    )


def label_set_input(label_set):
    """A label set's file as a job's input when the workflow writes it (the derived majority), else none:
    the manifest's files exist already (and the synthetic consensus lies inside a directory() output).
    """
    return [LABEL_SET_FILES[label_set]] if label_set in DERIVED_LABEL_SETS else []


# D-ECE-soft's label sets as inputs, where the workflow writes one (the derived majority).
SOFT_GT_INPUT = [
    f for name in config["evaluation"]["soft_label_sets"] for f in label_set_input(name)
]


# --- the base model -----------------------------------------------------------------------------
if BASE_CHECKPOINT is None:
    # The pretrain job's status is tracked; its checkpoint is not, so deleting checkpoints never
    # retrains (keep models/pretrain/best.pt if you will add configurations later).
    # (base_weights: the best.pt beside it)
    BASE_INPUT = f"{R}/models/pretrain/status.json"
    # The pretrain job learns from a dataset of its own, never the experiment's labels: the user's
    # dataset.base_manifest, or generated images labelled by the simulated detector (synth_base).
    # (With the user's own data and neither, the config check above has stopped the run.)
    if BASE_MANIFEST is None:
        # a directory() output of the synth_base rule (dataset_file)
        BASE_DATASET_INPUT = f"{R}/data/base"
    else:
        BASE_DATASET_INPUT = BASE_MANIFEST
    BASE_SPLITS = f"{R}/data/base_splits.json"
else:
    BASE_INPUT = BASE_CHECKPOINT

# One model's folder (status.json, best.pt, last.pt, metrics.csv).
MODEL_DIR = f"{R}/models/{{strategy}}/{{config_id}}"
