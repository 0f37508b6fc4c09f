# Stage 2: the sweep. A base model (pretrain, unless a base checkpoint is configured), then one
# training job per strategy x configuration, then predictions on validation and test. On SLURM a
# model's training and predictions run in one job (profiles/slurm `groups`), one after another
# (GROUP_SLOT in their resources, resources.smk).
# Outputs tracked by Snakemake are status.json and the detections files; checkpoints are not, so
# they can be deleted once predicted without triggering any retraining.


# The sweep's files: configs.tsv, pretrain.yaml and one training configuration per id. Each file's
# text is a params value, so a file is rewritten (and its model retrained) only when its own
# settings change; one job writing them all (`multirater sweep --config-dir`) would rewrite every
# file, and retrain every model, whenever any setting changed.
rule sweep_file:
    output:
        report(f"{R}/sweep/{{file}}", caption="../report/sweep.rst", category="Sweep"),
    log:
        f"{R}/logs/sweep/{{file}}.log",
    benchmark:
        f"{R}/benchmarks/sweep/{{file}}.tsv"
    wildcard_constraints:
        file=r"configs\.tsv|pretrain\.yaml|configs/[0-9a-f]{8}\.yaml",
    params:
        text=lambda w: SWEEP_FILES[w.file],
    run:
        from multirater.core.files import write_text

        write_text(output[0], params.text)
        write_text(log[0], f"wrote {output[0]}\n")


if BASE_CHECKPOINT is None:

    # The base model learns from the base dataset (BASE_DATASET_INPUT, common.smk), never the experiment's.
    rule pretrain:
        input:
            dataset=BASE_DATASET_INPUT,
            splits=BASE_SPLITS,
            config=f"{R}/sweep/pretrain.yaml",
        output:
            f"{R}/models/pretrain/status.json",
        log:
            f"{R}/logs/pretrain.log",
        benchmark:
            f"{R}/benchmarks/pretrain.tsv"
        conda:
            ENV
        threads: config["resources"]["train_threads"]
        resources:
            **TRAIN_RESOURCES,
        params:
            dataset=dataset_file(BASE_DATASET_INPUT, generated=BASE_MANIFEST is None),
            out=output_folder(),
        shell:
            "multirater pretrain --dataset {params.dataset} --splits {input.splits}"
            " --config {input.config} --out {params.out}"
            " --device {resources.device} --threads {threads}"
            " --loader-workers {resources.loader_workers} > {log} 2>&1"


rule train:
    input:
        dataset=DATASET_INPUT,
        splits=f"{R}/data/splits.json",
        config=f"{R}/sweep/configs/{{config_id}}.yaml",
        base=BASE_INPUT,
    output:
        f"{MODEL_DIR}/status.json",
    log:
        f"{R}/logs/train/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{strategy}}/{{config_id}}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        **TRAIN_RESOURCES,
    params:
        dataset=dataset_file(),
        base=base_weights,
        out=output_folder(),
    shell:
        "multirater train --dataset {params.dataset} --splits {input.splits}"
        " --strategy {wildcards.strategy} --config {input.config} --out {params.out}"
        " --base {params.base} --device {resources.device} --threads {threads}"
        " --loader-workers {resources.loader_workers} > {log} 2>&1"


# One job per model predicts every split the workflow needs (SPLITS): one torch start and one model load
# instead of one per split.
rule predict:
    input:
        dataset=DATASET_INPUT,
        splits=f"{R}/data/splits.json",
        status=f"{MODEL_DIR}/status.json",
    output:
        [f"{R}/predictions/{split}/{{strategy}}/{{config_id}}.json" for split in SPLITS],
    log:
        f"{R}/logs/predict/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/predict/{{strategy}}/{{config_id}}.tsv"
    conda:
        ENV
    threads: config["resources"]["predict_threads"]
    resources:
        **PREDICT_RESOURCES,
    params:
        dataset=dataset_file(),
        model=input_folder("status"),
        predicted_splits=" ".join(SPLITS),
    shell:
        "multirater predict --model {params.model} --dataset {params.dataset}"
        " --splits {input.splits} --images {params.predicted_splits} --out {output}"
        " --device {resources.device} --threads {threads}"
        " --batch-size {resources.batch_size} > {log} 2>&1"


rule sweep:
    input:
        f"{R}/sweep/configs.tsv",
        status_files(),
        [prediction_files(split) for split in SPLITS],
