# Shared by the rules: where an ensemble's members' detections lie, and the apply target's ensemble.
from snakemake.exceptions import WorkflowError

from multirater.calibration.approaches import headline
from multirater.core.errors import UserError
from multirater.ensembles.files import APPLY as APPLY_STAGE
from multirater.ensembles.files import TEST as TEST_STAGE
from multirater.ensembles.files import VALIDATION as VALIDATION_STAGE
from multirater.selection.members import read_members
from multirater.workflow_config import apply_ensemble

# --- ensembles: members are known once selection.csv exists (the members rule is a checkpoint) ----
# Where the members' detections lie: the test predictions, or the apply target's folder predictions.
MEMBER_DETECTIONS = {
    TEST_STAGE: f"{R}/predictions/test",
    APPLY_STAGE: f"{R}/apply/predictions",
    VALIDATION_STAGE: f"{R}/predictions/val",  # the same ensembles on validation (calibration)
}


def member_detections(wildcards):
    """The detections files the members file of this ensemble names (read after the checkpoint ran)."""
    members = checkpoints.members.get(**wildcards).output[0]
    return [m["detections"] for m in read_members(members)["members"]]


# --- the apply target: which ensemble to build, on which folder of new images -------------------
APPLY = config["apply"]


def workflow_error_of(function, *args):
    """``function(*args)``; a UserError (a bad config) stops the run as one line."""
    try:
        return function(*args)
    except UserError as error:
        raise WorkflowError(str(error)) from None


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
