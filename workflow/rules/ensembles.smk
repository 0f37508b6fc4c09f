# Stage 4: ensembles of each size S. LSE_S = the top S label-sampling models; RSE_S = the top S/R
# rater-specific models of each of the R raters. Fused with the engine's grouping rule.


rule members:
    input:
        f"{R}/selection/selection.csv",
    output:
        members=f"{R}/ensembles/{{kind}}/{{size}}/members.txt",
        sources=f"{R}/ensembles/{{kind}}/{{size}}/sources.txt",
    log:
        f"{R}/logs/members/{{kind}}/{{size}}.log",
    benchmark:
        f"{R}/benchmarks/members/{{kind}}/{{size}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        predictions=f"{R}/predictions/test",
    shell:
        "multirater members --selection {input} --kind {wildcards.kind} --size {wildcards.size}"
        " --predictions {params.predictions} --out {output.members}"
        " --sources-out {output.sources} > {log} 2>&1"


rule fuse:
    input:
        members=f"{R}/ensembles/{{kind}}/{{size}}/members.txt",
        sources=f"{R}/ensembles/{{kind}}/{{size}}/sources.txt",
        # every candidate's test detections; members.txt names the ones fused
        predictions=lambda w: prediction_files("test", kind_strategies(w.kind)),
    output:
        f"{R}/ensembles/{{kind}}/{{size}}/fused.json",
    log:
        f"{R}/logs/fuse/{{kind}}/{{size}}.log",
    benchmark:
        f"{R}/benchmarks/fuse/{{kind}}/{{size}}.tsv"
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


rule ensembles:
    input:
        FUSED,
