# Stage 5: every single model and every ensemble on the consensus test set, with the same
# bootstrap resamples (same seed), then the tidy tables and the paired comparisons.


rule evaluate_model:
    input:
        dataset=DATASET_INPUT,
        pred=f"{R}/predictions/test/{{strategy}}/{{config_id}}.json",
    output:
        f"{R}/metrics/models/{{strategy}}/{{config_id}}.json",
    log:
        f"{R}/logs/evaluate/models/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/models/{{strategy}}/{{config_id}}.tsv"
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
        "multirater evaluate --gt {params.gt} --pred {input.pred} --out {output}"
        " {params.args} > {log} 2>&1"


rule evaluate_ensemble:
    input:
        dataset=DATASET_INPUT,
        pred=f"{R}/ensembles/{{kind}}/{{size}}/fused.json",
    output:
        f"{R}/metrics/ensembles/{{kind}}/{{size}}.json",
    log:
        f"{R}/logs/evaluate/ensembles/{{kind}}/{{size}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/ensembles/{{kind}}/{{size}}.tsv"
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
        "multirater evaluate --gt {params.gt} --pred {input.pred} --out {output}"
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
    shell:
        "multirater tables --selection {input.selection} --out-dir $(dirname {output.metrics})"
        " --models {input.models} --ensembles {input.ensembles} > {log} 2>&1"


rule evaluate:
    input:
        MODEL_METRICS,
        ENSEMBLE_METRICS,
        TABLES,
