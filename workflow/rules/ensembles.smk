# Stage 4: ensembles of each size S. LSE_S = the top S label-sampling models; RSE_S = the top S/R
# rater-specific models of each of the R raters. Fused with the engine's grouping rule.
# One members rule and one fuse rule serve the experiment (results/ensembles/<kind>/<size>/, the
# test predictions), the same ensembles on validation for calibration (results/val_ensembles/...) and
# the apply target (results/apply/<kind>/<size>/, predictions of new images); MEMBER_DETECTIONS says
# where each stage's member detections lie.


# Members are known only once selection.csv exists: a checkpoint, so that fuse reads exactly the
# members' detections (and the apply target predicts only with the members).
checkpoint members:
    input:
        f"{R}/selection/selection.csv",
    output:
        f"{R}/{{stage}}/{{kind}}/{{size}}/members.json",
    log:
        f"{R}/logs/{{stage}}/{{kind}}/{{size}}/members.log",
    benchmark:
        f"{R}/benchmarks/{{stage}}/{{kind}}/{{size}}/members.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        predictions=lambda w: MEMBER_DETECTIONS[w.stage],
    shell:
        "multirater members --selection {input} --kind {wildcards.kind} --size {wildcards.size}"
        " --predictions {params.predictions} --out {output} > {log} 2>&1"


rule fuse:
    input:
        members=f"{R}/{{stage}}/{{kind}}/{{size}}/members.json",
        detections=member_detections,
    output:
        fused_file(R, "{stage}", "{kind}", "{size}"),
    log:
        f"{R}/logs/{{stage}}/{{kind}}/{{size}}/fuse.log",
    benchmark:
        f"{R}/benchmarks/{{stage}}/{{kind}}/{{size}}/fuse.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=30,
    params:
        iou=config["fusion"]["iou"],
        score_norm=config["fusion"]["score_norm"],
        merge=config["fusion"]["merge"],
    shell:
        "multirater fuse --members {input.members} --out {output} --iou {params.iou}"
        " --score-norm {params.score_norm} --merge {params.merge} > {log} 2>&1"


rule ensembles:
    input:
        FUSED,
