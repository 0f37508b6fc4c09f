# Stage 5: every single model and every ensemble on the consensus test set, with the same
# bootstrap resamples (same seed), then the tidy tables and the paired comparisons.


# One rule for every detections file: metrics/models/<strategy>/<config_id>.json from a model's test
# predictions, metrics/ensembles/<kind>/<size>.json from a fused ensemble (EVALUATED maps them).
# The metrics file carries the detections' identity; the tables read it from there.
rule evaluate_detections:
    input:
        dataset=DATASET_INPUT,
        detections=lambda w: EVALUATED[w.subject],
    output:
        f"{R}/metrics/{{subject}}.json",
    log:
        f"{R}/logs/evaluate/{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{subject}}.tsv"
    wildcard_constraints:
        subject=EVALUATED_SUBJECT,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        gt=CONSENSUS,
        args=evaluation_args(),
    shell:
        "multirater evaluate --gt {params.gt} --pred {input.detections} --out {output}"
        " {params.args} > {log} 2>&1"


rule tables:
    input:
        selection=f"{R}/selection/selection.csv",
        models=MODEL_METRICS,
        ensembles=ENSEMBLE_METRICS,
    output:
        metrics=report(
            f"{R}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        table1=report(
            f"{R}/tables/table1.csv", caption="../report/table1.rst", category="Tables"
        ),
        table1_md=f"{R}/tables/table1.md",
        table1_tex=f"{R}/tables/table1.tex",
        significance=report(
            f"{R}/tables/significance.csv",
            caption="../report/significance.rst",
            category="Tables",
        ),
        lse_vs_rse=report(
            f"{R}/tables/lse_vs_rse.csv",
            caption="../report/lse_vs_rse.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/tables.log",
    benchmark:
        f"{R}/benchmarks/tables.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        out_dir=output_folder("metrics"),
    shell:
        "multirater tables --selection {input.selection} --out-dir {params.out_dir}"
        " --models {input.models} --ensembles {input.ensembles} > {log} 2>&1"


rule evaluate:
    input:
        MODEL_METRICS,
        ENSEMBLE_METRICS,
        TABLES,
