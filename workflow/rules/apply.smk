# Stage 6 (on demand, not part of `all`): the calibrated ensemble on a folder of new images.
# `snakemake apply` with `apply: {images: DIR, kind: rse, size: 4}` in a config file predicts DIR with
# each member of that ensemble, fuses them like the experiment's ensembles and counts objects per image.
# Members are known only once selection.csv exists, so apply_members is a checkpoint.



checkpoint apply_members:
    input:
        f"{R}/selection/selection.csv",
    output:
        members=f"{R}/apply/{{kind}}-{{size}}/members.txt",
        sources=f"{R}/apply/{{kind}}-{{size}}/sources.txt",
    log:
        f"{R}/logs/apply/{{kind}}-{{size}}/members.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        predictions=lambda w: f"{R}/apply/{w.kind}-{w.size}/predictions",
    shell:
        "multirater members --selection {input} --kind {wildcards.kind} --size {wildcards.size}"
        " --predictions {params.predictions} --out {output.members}"
        " --sources-out {output.sources} > {log} 2>&1"


rule apply_predict:
    input:
        images=lambda w: APPLY["images"],
        status=f"{R}/models/{{strategy}}/{{config_id}}/status.json",
    output:
        f"{R}/apply/{{kind}}-{{size}}/predictions/{{strategy}}/{{config_id}}.json",
    log:
        f"{R}/logs/apply/{{kind}}-{{size}}/predict/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/apply/{{kind}}-{{size}}/predict/{{strategy}}/{{config_id}}.tsv"
    conda:
        ENV
    threads: config["resources"]["predict_threads"]
    resources:
        **PREDICT_RESOURCES,
    shell:
        "multirater predict --model $(dirname {input.status}) --images {input.images}"
        " --out {output} --device {resources.device} --threads {threads}"
        " --batch-size {resources.batch_size} > {log} 2>&1"


rule apply_fuse:
    input:
        members=f"{R}/apply/{{kind}}-{{size}}/members.txt",
        sources=f"{R}/apply/{{kind}}-{{size}}/sources.txt",
        predictions=apply_member_predictions,
    output:
        f"{R}/apply/{{kind}}-{{size}}/detections.json",
    log:
        f"{R}/logs/apply/{{kind}}-{{size}}/fuse.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        iou=config["fusion"]["iou"],
        score_norm=config["fusion"]["score_norm"],
        merge=config["fusion"]["merge"],
    shell:
        "multirater fuse --iou {params.iou} --score-norm {params.score_norm}"
        " --merge {params.merge} --out {output} $(cat {input.members})"
        " --sources $(cat {input.sources}) > {log} 2>&1"


rule apply_count:
    input:
        f"{R}/apply/{{kind}}-{{size}}/detections.json",
    output:
        f"{R}/apply/{{kind}}-{{size}}/counts.csv",
    log:
        f"{R}/logs/apply/{{kind}}-{{size}}/count.log",
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


localrules:
    apply,
    apply_members,
    apply_fuse,
    apply_count,


rule apply:
    input:
        apply_counts,
