# Stage 7: everything the HTML report shows (figures and tables, each with a caption from
# workflow/report/; the front page is workflow/report/workflow.rst). `make demo` runs the workflow
# and then writes results/report.html (snakemake --report results/report.html --report-after-run).


rule report:
    input:
        FIGURES,
        TABLES,
        f"{R}/selection/selection.csv",
        f"{R}/agreement/counts.csv",
        f"{R}/agreement/f1_vs_iou.csv",
        CALIBRATION_OUTPUTS,
        RUN_RECORD,
        FINDINGS,


# Where the run ran (results/run.json): the checkout's commit, the workflow's machine, and where each model
# trained (each status.json records its own training's machine: on a cluster, its node). Rewritten when a
# model is retrained or the checkout's commit or dirty state changes (params.checkout).
rule run_record:
    input:
        status_files() + ([BASE_INPUT] if BASE_CHECKPOINT is None else []),
    output:
        report(RUN_RECORD, caption="../report/run.rst", category="About"),
    log:
        f"{R}/logs/run_record.log",
    benchmark:
        f"{R}/benchmarks/run_record.tsv"
    conda:
        ENV
    params:
        checkout=f"{CHECKOUT['commit']} dirty={CHECKOUT['dirty']}",
        repository=workflow.basedir,
    shell:
        "multirater run-record {input} --out {output}"
        " --repository {params.repository} > {log} 2>&1"


# The report front page's text (workflow/report/workflow.rst shows this file): LSE vs RSE per size with
# every interval, the best single model, the calibration headline, and where the run ran.
rule findings:
    input:
        **(
            {"calibration": f"{R}/tables/calibration.csv"}
            if CALIBRATION["enabled"]
            else {}
        ),
        comparison=f"{R}/tables/lse_vs_rse.csv",
        metrics=f"{R}/tables/metrics.csv",
        selection=f"{R}/selection/selection.csv",
        run=RUN_RECORD,
    output:
        report(FINDINGS, caption="../report/findings.rst", category="About"),
    log:
        f"{R}/logs/findings.log",
    benchmark:
        f"{R}/benchmarks/findings.tsv"
    conda:
        ENV
    params:
        calibration=lambda w, input: (
            f"--calibration {input.calibration}" if CALIBRATION["enabled"] else ""
        ),
        headline=" ".join(headline(config)),
    shell:
        "multirater findings --comparison {input.comparison} --metrics {input.metrics}"
        " --selection {input.selection} {params.calibration} --headline {params.headline}"
        " --run {input.run} --out {output} > {log} 2>&1"
