# Stage 5: every single model and every ensemble on every test label set (calibrated detections: on the
# headline label set), with the same bootstrap resamples (same seed), then the tidy tables and the
# paired comparisons.


# One rule for every detections file and label set: metrics/models/<strategy>/<config_id>.json from a
# model's test predictions, metrics/ensembles/<kind>/<size>.json from a fused ensemble (EVALUATED maps
# them), each under label_sets/<name>/ for the other label sets. The metrics file carries the
# detections' identity and its label set (settings.label_set); the tables read them from there.
rule evaluate_detections:
    input:
        dataset=DATASET_INPUT,
        detections=lambda w: EVALUATED[subject_label_set(w.subject)[1]],
        gt=lambda w: label_set_input(subject_label_set(w.subject)[0]),
        soft_gt=SOFT_GT_INPUT,
    output:
        f"{R}/metrics/{{subject}}.json",
    log:
        f"{R}/logs/evaluate/{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{subject}}.tsv"
    wildcard_constraints:
        subject=LABELLED_SUBJECT,
    group:
        evaluation_group
    conda:
        ENV
    threads: 1
    resources:
        **GROUP_SLOT,  # in its model's SLURM job, after the predictions (resources.smk)
        **EVALUATION_JOB,  # that job's partition, account, ... (a model's), else the CPU jobs'
        mem_mb=4000,
        runtime=10,  # seconds in practice; a model's SLURM job adds it to its time limit
    params:
        label_set=lambda w: subject_label_set(w.subject)[0],
        gt=lambda w: LABEL_SET_FILES[subject_label_set(w.subject)[0]],
        args=evaluation_args(),
        # D-ECE-soft beside the headline label set's D-ECE (none configured: no flag)
        soft=lambda w: (
            f"--soft-gt {' '.join(SOFT_GT)}"
            if SOFT_GT and not w.subject.startswith("label_sets/")
            else ""
        ),
    shell:
        "multirater evaluate --gt {params.gt} --label-set {params.label_set}"
        " --pred {input.detections} --out {output} {params.args} {params.soft} > {log} 2>&1"


# The two-level bootstrap of LSE_S and RSE_S (multirater.evaluation.member_bootstrap): each resample
# redraws the test images, as evaluate does, and each ensemble's members from the pool. One job per size.
rule member_bootstrap:
    input:
        dataset=DATASET_INPUT,
        pool=f"{R}/selection/pool.json",
        detections=lambda w: pool_files(checkpoints.pool.get().output[0]),
        soft_gt=SOFT_GT_INPUT,
    output:
        f"{R}/metrics/members/{{size}}.json",
    log:
        f"{R}/logs/member_bootstrap/{{size}}.log",
    benchmark:
        f"{R}/benchmarks/member_bootstrap/{{size}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=60,
    params:
        gt=HEADLINE_GT,
        args=evaluation_args(),
        draws=config["evaluation"]["member_draws"],
        soft=f"--soft-gt {' '.join(SOFT_GT)}" if SOFT_GT else "",
        fusion=" ".join(
            [
                f"--fusion-iou {config['fusion']['iou']}",
                f"--score-norm {config['fusion']['score_norm']}",
                f"--merge {config['fusion']['merge']}",
            ]
        ),
    shell:
        "multirater member-bootstrap --gt {params.gt} --pool {input.pool} --size {wildcards.size}"
        " --out {output} {params.args} --member-draws {params.draws} {params.fusion}"
        " {params.soft} > {log} 2>&1"


rule tables:
    input:
        selection=f"{R}/selection/selection.csv",
        models=MODEL_METRICS,
        ensembles=ENSEMBLE_METRICS,
        label_sets=LABEL_SET_METRICS,
        members=expand(f"{R}/metrics/members/{{size}}.json", size=SIZES),
        pool=f"{R}/selection/pool.json",
        # the selected models' replicates r >= 1 (none with training.replicates: 1)
        replicates=lambda w: [
            f"{R}/metrics/models/{strategy}/{model_id}.json"
            for strategy, model_id in replicate_models(
                checkpoints.pool.get().output[0]
            )
        ],
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
        label_sets=report(
            f"{R}/tables/label_sets.csv",
            caption="../report/label_sets.rst",
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
        " --models {input.models} --ensembles {input.ensembles}"
        " --label-sets {input.label_sets} --members {input.members} --pool {input.pool}"
        " --replicates {input.replicates} > {log} 2>&1"


if MANIFEST is None:

    # Did the rater-specific models learn their rater's bias? Every selected model's score on the
    # synthetic test objects labelled by one rater (test_objects.csv), the LS models' too.
    rule learned_bias:
        input:
            dataset=DATASET_INPUT,
            selection=f"{R}/selection/selection.csv",
            predictions=prediction_files("test"),
        output:
            LEARNED_BIAS[0],
        log:
            f"{R}/logs/learned_bias.log",
        benchmark:
            f"{R}/benchmarks/learned_bias.tsv"
        conda:
            ENV
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=2000,
            runtime=10,
        params:
            objects=f"{R}/data/synthetic/test_objects.csv",
        shell:
            "multirater learned-bias --objects {params.objects} --selection {input.selection}"
            " --predictions {input.predictions} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        MODEL_METRICS,
        ENSEMBLE_METRICS,
        LABEL_SET_METRICS,
        TABLES,
