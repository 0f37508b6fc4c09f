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


def pool_detections(wildcards):
    """Every detections file the pool names (each selected model's replicates), once it exists."""
    from multirater.selection.pool import pool_detections as detections, read_pool

    return detections(read_pool(checkpoints.pool.get().output[0]))


def replicate_metrics(wildcards):
    """The metrics files of the selected models' replicates r >= 1 (none with training.replicates: 1)."""
    from multirater.selection.pool import read_pool

    pool = read_pool(checkpoints.pool.get().output[0])
    return [
        f"{R}/metrics/models/{m['strategy']}/{rep['model_id']}.json"
        for m in pool["models"]
        for rep in m["replicates"][1:]
    ]
