# The evidence run (`make evidence`, `make mechanism`; the `evidence` target, not part of `all`): the
# whole workflow once per cell of the config's `evidence` section (rater preset x data seed, or each arm's
# biases x seeds with the arm's own settings), each in its own folder <out>/<cell>/ (its config.yaml,
# results/, run.json), then LSE vs RSE over every run (multirater.evidence): <out>/summary.csv, cells.csv,
# directions.csv (what held in every data seed, with the two-level interval), ranges.csv, runs.csv,
# fig_evidence, fig_learned_bias and one fig_<arm> per arm ({png,pdf}), and <out>/calibration.csv (every
# cell's post-hoc calibration table) when calibration.enabled. A part of it: one cell
# (<out>/<cell>/run.json) or one arm's cells (<out>/arms/<arm>.txt).
from multirater.config import SCHEMA_PATH
from multirater.evidence.design import (
    CELL_CONFIG,
    CELL_PATTERN,
    cell_config,
    cell_files,
    cell_folder,
    evidence_cells,
    summary_figures,
    summary_inputs,
)
from multirater.workflow_config import check_evidence_cells

EVIDENCE = config["evidence"]["out"]
# No cells when the config cannot have an evidence run (e.g. the user's own data); summary_inputs
# names the problem if the evidence target is asked for.
try:
    EVIDENCE_CELLS = {c.name: c for c in evidence_cells(config)}
except UserError:
    EVIDENCE_CELLS = {}
if config["evidence"]["arms"]:
    try:  # every arm's cell config is a valid workflow config before any cell runs
        check_evidence_cells(config, SCHEMA_PATH)
    except UserError as _error:
        raise WorkflowError(str(_error)) from None


# A cell's config; its text is a params value, so a cell reruns only when its own config changes.
rule evidence_config:
    output:
        f"{EVIDENCE}/{{cell}}/{CELL_CONFIG}",
    log:
        f"{EVIDENCE}/logs/{{cell}}.config.log",
    benchmark:
        f"{EVIDENCE}/benchmarks/{{cell}}.config.tsv"
    wildcard_constraints:
        cell=CELL_PATTERN,
    params:
        text=lambda w: _yaml(cell_config(config, EVIDENCE_CELLS[w.cell])),
    run:
        from multirater.core.files import write_text

        write_text(output[0], params.text)
        write_text(log[0], f"wrote {output[0]}\n")


# The whole workflow on one cell, with every core: one cell at a time; an interrupted cell resumes.
rule evidence_cell:
    input:
        f"{EVIDENCE}/{{cell}}/{CELL_CONFIG}",
    output:
        **cell_files(f"{EVIDENCE}/{{cell}}", SIZES, config["calibration"]["enabled"]),
    log:
        f"{EVIDENCE}/logs/{{cell}}.log",
    benchmark:
        f"{EVIDENCE}/benchmarks/{{cell}}.tsv"
    wildcard_constraints:
        cell=CELL_PATTERN,
    conda:
        ENV
    threads: lambda wildcards: workflow.cores
    shell:
        "multirater evidence cell --config {input} --cores {threads} > {log} 2>&1"


# One arm's cells, finished (a part of the run that can be asked for alone: <out>/arms/<arm>.txt).
rule evidence_arm:
    input:
        lambda w: [
            cell_files(cell_folder(config, c), SIZES)["run"]
            for c in EVIDENCE_CELLS.values()
            if c.arm == w.arm
        ],
    output:
        f"{EVIDENCE}/arms/{{arm}}.txt",
    log:
        f"{EVIDENCE}/logs/arm_{{arm}}.log",
    benchmark:
        f"{EVIDENCE}/benchmarks/arm_{{arm}}.tsv"
    wildcard_constraints:
        arm="[A-Za-z][A-Za-z0-9_]*",
    run:
        from multirater.core.files import write_text

        write_text(output[0], "".join(f"{path}\n" for path in input))
        write_text(log[0], f"wrote {output[0]}\n")


# calibration.csv: every cell's calibration table, when the cells calibrate.
rule evidence_summary:
    input:
        lambda w: summary_inputs(config, SIZES),
    output:
        **(
            {"calibration": f"{EVIDENCE}/calibration.csv"}
            if config["calibration"]["enabled"]
            else {}
        ),
        **summary_figures(config),
        summary=report(
            f"{EVIDENCE}/summary.csv",
            caption="../report/evidence.rst",
            category="Evidence",
        ),
        cells=f"{EVIDENCE}/cells.csv",
        directions=f"{EVIDENCE}/directions.csv",
        ranges=f"{EVIDENCE}/ranges.csv",
        runs=f"{EVIDENCE}/runs.csv",
        png=report(
            f"{EVIDENCE}/fig_evidence.png",
            caption="../report/evidence.rst",
            category="Evidence",
        ),
        pdf=f"{EVIDENCE}/fig_evidence.pdf",
    log:
        f"{EVIDENCE}/logs/summary.log",
    benchmark:
        f"{EVIDENCE}/benchmarks/summary.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cells=[cell_folder(config, cell) for cell in EVIDENCE_CELLS.values()],
        out=output_folder("summary"),
    shell:
        "multirater evidence summarize --cells {params.cells} --out {params.out} > {log} 2>&1"


rule evidence:
    input:
        rules.evidence_summary.output,
