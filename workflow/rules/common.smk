# Configuration and parse-time facts (raters, configuration ids, sizes, splits) the rules share; the
# other shared definitions follow by concern (the includes at the end).
import re

import yaml
from snakemake.exceptions import WorkflowError

from multirater.config import SCHEMA_PATH
from multirater.core.errors import UserError
from multirater.core.kernels import pin_cpu_kernels
from multirater.core.provenance import git_state
from multirater.core.strategies import ENSEMBLE_KINDS, strategy_names
from multirater.ensembles.files import APPLY as APPLY_STAGE
from multirater.ensembles.files import TEST as TEST_STAGE
from multirater.ensembles.files import VALIDATION as VALIDATION_STAGE
from multirater.selection.pool import pool_files, replicate_models
from multirater.training.replicates import replicate_ids, replicate_jobs, replicates
from multirater.training.sweep import configs_tsv, pretrain_config, training_config
from multirater.workflow_config import load_workflow_config

R = "results"
ENV = "../../envs/multirater.yaml"


def _yaml(data):
    return yaml.safe_dump(data, sort_keys=False)


try:
    # Snakemake's validate(config, schema) checks every key, the schema's defaults are filled in, and
    # the cross-key rules follow (multirater.workflow_config): a bad config is one line naming the key.
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
        # replicates r >= 1 of every configuration (training.replicates): only the selected ones
        # are trained, once the pool checkpoint names them
        **{
            f"configs/{rid}.yaml": _yaml(job)
            for rid, job in replicate_jobs(_checked, CONFIGS).items()
        },
    }
except UserError as _error:
    raise WorkflowError(str(_error)) from None

config.clear()
config.update(_checked)

# resources.reproducible: every job's CPU kernels pinned to AVX2 (multirater.core.kernels). Jobs inherit this
# process's environment, and a cluster job parses this file again on its node, so the pin is in place before
# any job's torch loads.
if config["resources"]["reproducible"]:
    pin_cpu_kernels()
# The checkout's commit and dirty state: a params value of run_record, so a new commit rewrites run.json.
CHECKOUT = git_state(workflow.basedir)

CONFIG_IDS = [c["config_id"] for c in CONFIGS]
REPLICATES = replicates(config)
# model id -> (configuration id, replicate) of every replicate r >= 1 (none with training.replicates: 1)
REPLICATE_IDS = replicate_ids(CONFIG_IDS, REPLICATES)
STRATEGIES = strategy_names(RATERS)
KINDS = list(ENSEMBLE_KINDS)
SIZES = sorted(config["ensembles"]["sizes"])
# the splits every model predicts: the configured ones, test, and val when calibrators are fitted on it
SPLITS = sorted(
    set(config["prediction"]["splits"])
    | {"test"}
    | ({"val"} if config["calibration"]["enabled"] else set())
)
MANIFEST = config["dataset"]["manifest"]
BASE_CHECKPOINT = (config.get("model") or {}).get("base_checkpoint")
BASE_MANIFEST = config["dataset"]["base_manifest"]


wildcard_constraints:
    strategy="|".join(re.escape(s) for s in STRATEGIES),
    config_id="[0-9a-f]{8}",
    kind="|".join(KINDS),
    size="[0-9]+",
    # where an ensemble lies: the experiment's (test set) or the apply target's (new images)
    stage="|".join([TEST_STAGE, APPLY_STAGE, VALIDATION_STAGE]),


# The rest of what the rules share, by concern; each file uses the ones before it.
include: "common_inputs.smk"
include: "common_jobs.smk"
include: "common_outputs.smk"
include: "common_ensembles.smk"
