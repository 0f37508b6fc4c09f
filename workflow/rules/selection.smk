# Stage 3: rank each strategy's models by validation mAP; failed and diverged models are skipped.


rule select:
    input:
        status_files(),
    output:
        report(
            f"{R}/selection/selection.csv",
            caption="../report/selection.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/select.log",
    benchmark:
        f"{R}/benchmarks/select.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        ls=config["selection"]["ls"],
        rs=config["selection"]["rs"],
    shell:
        "multirater select --top-ls {params.ls} --top-rs {params.rs} --out {output}"
        " {input} > {log} 2>&1"


# The pool the two-level bootstrap draws ensemble members from: every selected model and its training
# replicates (training.replicates). A checkpoint: the replicates to train are known once selection.csv is.
checkpoint pool:
    input:
        f"{R}/selection/selection.csv",
    output:
        f"{R}/selection/pool.json",
    log:
        f"{R}/logs/pool.log",
    benchmark:
        f"{R}/benchmarks/pool.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        replicates=REPLICATES,
        predictions=f"{R}/predictions/test",
    shell:
        "multirater pool --selection {input} --replicates {params.replicates}"
        " --predictions {params.predictions} --out {output} > {log} 2>&1"
