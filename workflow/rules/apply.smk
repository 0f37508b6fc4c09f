# Stage 8 (on demand, not part of `all`): the calibrated ensemble on a folder of new images.
# `snakemake apply` with `apply: {images: DIR, kind: rse, size: 4}` in a config file predicts DIR with
# each member of that ensemble, fuses them like the experiment's ensembles (the members and fuse
# rules of ensembles.smk, stage `apply`) and counts objects per image in results/apply/<kind>/<size>/.
# With calibration.enabled, apply runs the calibration headline instead (calibration.smk): that approach's
# detections on DIR, recalibrated with its calibrator, counted in results/apply/<approach>/<method>-<target>/
# next to how well that approach's counts held on the test set.


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
        fused_file(R, APPLY_STAGE, "{kind}", "{size}"),
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


localrules:
    apply_recalibrate,
    apply_count_calibrated,


rule apply_recalibrate:
    input:
        images=lambda w: APPLY["images"],
        calibrator=f"{R}/calibration/{{approach}}/{{method}}-{{target}}/calibrator.json",
        detections=lambda w: APPROACH_FILES.apply_detections(w.approach),
    output:
        f"{R}/apply/{{approach}}/{{method}}-{{target}}/detections.json",
    log:
        f"{R}/logs/apply/{{approach}}/{{method}}-{{target}}/recalibrate.log",
    benchmark:
        f"{R}/benchmarks/apply/{{approach}}/{{method}}-{{target}}/recalibrate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    shell:
        "multirater recalibrate --calibrator {input.calibrator} --detections {input.detections}"
        " --images {input.images} --out {output} > {log} 2>&1"


# The counts of the calibrated headline, with the interval and the test set's evidence for it.
rule apply_count_calibrated:
    input:
        detections=f"{R}/apply/{{approach}}/{{method}}-{{target}}/detections.json",
        accuracy=f"{R}/calibration/{{approach}}/{{method}}-{{target}}/counts.json",
    output:
        f"{R}/apply/{{approach}}/{{method}}-{{target}}/counts.csv",
    log:
        f"{R}/logs/apply/{{approach}}/{{method}}-{{target}}/count.log",
    benchmark:
        f"{R}/benchmarks/apply/{{approach}}/{{method}}-{{target}}/count.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=10,
    params:
        threshold=APPLY["threshold"],
    shell:
        "multirater count --detections {input.detections} --accuracy {input.accuracy}"
        " --threshold {params.threshold} --out {output} > {log} 2>&1"


rule apply:
    input:
        apply_counts,
