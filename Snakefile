# multirater: multi-rater annotations -> calibrated detectors (Campi et al.), end to end.
# Stages live in workflow/rules/*.smk; their rules call the `multirater` CLI, except sweep_file and
# evidence_config (they write a text the workflow made at parse time) and figure_agreement (a copy).
from snakemake.utils import min_version

min_version("9.0")


# The demo config, unless config files are given (--configfile config/paper.yaml replaces it
# instead of being merged into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The HTML report's front page; every figure and table in it has its own caption (workflow/report/).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/agreement.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/ensembles.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/calibration.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/review.smk"
include: "workflow/rules/evidence.smk"


localrules:
    all,
    data,
    agreement,
    figure_agreement,
    sweep_file,
    sweep,
    select,
    pool,
    members,
    ensembles,
    evaluate,
    tables,
    figure3,
    figure4,
    figures,
    report,
    run_record,
    findings,
    apply_count,
    apply,
    evidence_config,
    evidence_cell,
    evidence_arm,
    evidence_summary,
    evidence,


rule all:
    input:
        ALL_OUTPUTS,
