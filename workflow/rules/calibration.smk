# Stage 5b (calibration.enabled): post-hoc calibration side by side. Each approach (the best ls model,
# the best rs model of each rater, the largest lse and rse) gets every calibrator (method x target) fitted
# on its validation detections, applied to its test detections, evaluated with the experiment's own
# evaluation settings (same bootstrap resamples: paired) and its expected counts checked against the test
# labels; then one table (tables/calibration.csv) and Figure 5 (D-ECE against training cost).
# Logic lives in multirater.calibration; the rules only connect files.
from multirater.calibration.approaches import UNCALIBRATED
from multirater.calibration.methods import METHODS, TARGETS

# any registered method and target
METHOD_NAMES = "|".join(map(re.escape, METHODS))
TARGET_NAMES = "|".join(map(re.escape, TARGETS))


wildcard_constraints:
    approach="|".join(re.escape(a) for a in approach_names(RATERS)),
    method=METHOD_NAMES,
    target=TARGET_NAMES,
    variant=f"{UNCALIBRATED}|({METHOD_NAMES})-({TARGET_NAMES})",


localrules:
    calibrate,
    recalibrate,
    count_accuracy,
    calibration_table,
    figure5,
    calibration,


# --- fit on validation, apply to test -------------------------------------------------------------
rule calibrate:
    input:
        dataset=DATASET_INPUT,
        detections=lambda w: APPROACH_FILES.detections(w.approach, "val"),
    output:
        f"{R}/calibration/{{approach}}/{{method}}-{{target}}/calibrator.json",
    log:
        f"{R}/logs/calibration/{{approach}}/{{method}}-{{target}}/calibrate.log",
    benchmark:
        f"{R}/benchmarks/calibration/{{approach}}/{{method}}-{{target}}/calibrate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        dataset=dataset_file(),
        iou=CALIBRATION["iou"],
        # the hard target's labels (only the validation images they cover); the soft target: each image's raters
        reference=lambda w: (
            f"--reference {CALIBRATION['reference']}"
            if TARGETS[w.target].reference
            else ""
        ),
    shell:
        "multirater calibrate --detections {input.detections} --dataset {params.dataset}"
        " --method {wildcards.method} --target {wildcards.target} {params.reference}"
        " --iou {params.iou} --out {output} > {log} 2>&1"


rule recalibrate:
    input:
        dataset=DATASET_INPUT,
        calibrator=f"{R}/calibration/{{approach}}/{{method}}-{{target}}/calibrator.json",
        detections=lambda w: APPROACH_FILES.detections(w.approach, "test"),
    output:
        f"{R}/calibration/{{approach}}/{{method}}-{{target}}/test.json",
    log:
        f"{R}/logs/calibration/{{approach}}/{{method}}-{{target}}/recalibrate.log",
    benchmark:
        f"{R}/benchmarks/calibration/{{approach}}/{{method}}-{{target}}/recalibrate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        dataset=dataset_file(),
    shell:
        "multirater recalibrate --calibrator {input.calibrator} --detections {input.detections}"
        " --dataset {params.dataset} --out {output} > {log} 2>&1"


# The metrics of the recalibrated test detections come from evaluate_detections (evaluation.smk):
# metrics/calibration/<approach>/<variant>.json, same settings and resamples as every other file.


# Do the expected counts (sum of scores) hold on the test images? Against the boxes of the headline test
# label set (evaluation.label_set: consensus by default, e.g. majority for MultiOrg).
rule count_accuracy:
    input:
        dataset=DATASET_INPUT,
        detections=lambda w: APPROACH_FILES.test_detections(w.approach, w.variant),
        gt=label_set_input(HEADLINE_LABEL_SET),
    output:
        f"{R}/calibration/{{approach}}/{{variant}}/counts.json",
    log:
        f"{R}/logs/calibration/{{approach}}/{{variant}}/count_accuracy.log",
    benchmark:
        f"{R}/benchmarks/calibration/{{approach}}/{{variant}}/count_accuracy.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        gt=HEADLINE_GT,
        threshold=APPLY["threshold"],
    shell:
        "multirater count-accuracy --detections {input.detections} --gt {params.gt}"
        " --threshold {params.threshold} --out {output} > {log} 2>&1"


# --- side by side ---------------------------------------------------------------------------------
rule calibration_table:
    input:
        metrics=lambda w: [
            APPROACH_FILES.metrics(a, v) for a in APPROACHES for v in VARIANTS
        ],
        counts=[
            f"{R}/calibration/{a}/{v}/counts.json"
            for a in APPROACHES
            for v in VARIANTS
        ],
        # the training jobs' benchmark files (their cost) exist once the models are trained
        status=status_files(),
    output:
        report(
            f"{R}/tables/calibration.csv",
            caption="../report/calibration.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/calibration/table.log",
    benchmark:
        f"{R}/benchmarks/calibration/table.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        benchmarks=f"{R}/benchmarks/train",
    shell:
        "multirater calibration-table --metrics {input.metrics} --counts {input.counts}"
        " --train-benchmarks {params.benchmarks} --out {output} > {log} 2>&1"


rule figure5:
    input:
        f"{R}/tables/calibration.csv",
    output:
        png=report(
            f"{R}/figures/fig5_calibration_cost.png",
            caption="../report/fig5.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/fig5_calibration_cost.pdf",
    log:
        f"{R}/logs/figure5.log",
    benchmark:
        f"{R}/benchmarks/figure5.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        stem=output_stem("png"),
    shell:
        "multirater calibration-figure --table {input} --out {params.stem} > {log} 2>&1"


rule calibration:
    input:
        CALIBRATION_OUTPUTS,
