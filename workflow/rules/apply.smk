# Stage 8 (on demand, not part of `all`): the calibrated ensemble on a folder of new images.
# `snakemake apply` with `apply: {images: DIR, kind: rse, size: 4}` in a config file predicts DIR with
# each member of that ensemble, fuses them like the experiment's ensembles (the members and fuse
# rules of ensembles.smk, stage `apply`) and counts objects per image in results/apply/<kind>/<size>/.


# One file per member model, shared by every apply ensemble the model is in.
rule apply_predict:
    input:
        images=lambda w: APPLY["images"],
        status=f"{MODEL_DIR}/status.json",
    output:
        f"{R}/apply/predictions/{{strategy}}/{{config_id}}.json",
    log:
        f"{R}/logs/apply/predict/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/apply/predict/{{strategy}}/{{config_id}}.tsv"
    conda:
        ENV
    threads: config["resources"]["predict_threads"]
    resources:
        **PREDICT_RESOURCES,
    params:
        model=input_folder("status"),
    shell:
        "multirater predict --model {params.model} --images {input.images}"
        " --out {output} --device {resources.device} --threads {threads}"
        " --batch-size {resources.batch_size} > {log} 2>&1"


rule apply_count:
    input:
        f"{R}/apply/{{kind}}/{{size}}/fused.json",
    output:
        f"{R}/apply/{{kind}}/{{size}}/counts.csv",
    log:
        f"{R}/logs/apply/{{kind}}/{{size}}/count.log",
    benchmark:
        f"{R}/benchmarks/apply/{{kind}}/{{size}}/count.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        threshold=APPLY["threshold"],
    shell:
        "multirater count --detections {input} --threshold {params.threshold}"
        " --out {output} > {log} 2>&1"


rule apply:
    input:
        apply_counts,
