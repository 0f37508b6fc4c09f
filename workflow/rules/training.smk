# Stage 2: the sweep. A base model (pretrain, unless a base checkpoint is configured), then one
# training job per strategy x configuration, then predictions on validation and test.
# Outputs tracked by Snakemake are status.json and the detections files; checkpoints are not, so
# they can be deleted once predicted without triggering any retraining.


# One training configuration file per id. Its text is a params value: the file is rewritten (and
# the model retrained) only when that configuration's own settings change.
rule training_config:
    output:
        f"{R}/sweep/configs/{{config_id}}.yaml",
    log:
        f"{R}/logs/sweep/{{config_id}}.log",
    params:
        text=lambda w: TRAINING_CONFIGS[w.config_id],
    run:
        from multirater.core.files import write_text

        write_text(output[0], params.text)


rule pretrain_config:
    output:
        f"{R}/sweep/pretrain.yaml",
    log:
        f"{R}/logs/sweep/pretrain.log",
    params:
        text=PRETRAIN_CONFIG,
    run:
        from multirater.core.files import write_text

        write_text(output[0], params.text)


rule sweep_table:
    output:
        f"{R}/sweep/configs.tsv",
    log:
        f"{R}/logs/sweep/configs.log",
    params:
        text=CONFIGS_TSV,
    run:
        from multirater.core.files import write_text

        write_text(output[0], params.text)


if BASE_CHECKPOINT is None:

    rule pretrain:
        input:
            dataset=DATASET_INPUT,
            splits=f"{R}/data/splits.json",
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
            dataset=DATASET,
        shell:
            "multirater pretrain --dataset {params.dataset} --splits {input.splits}"
            " --config {input.config} --out $(dirname {output})"
            " --device {resources.device} --threads {threads} > {log} 2>&1"


rule train:
    input:
        dataset=DATASET_INPUT,
        splits=f"{R}/data/splits.json",
        config=f"{R}/sweep/configs/{{config_id}}.yaml",
        base=BASE_INPUT,
    output:
        f"{R}/models/{{strategy}}/{{config_id}}/status.json",
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
        dataset=DATASET,
        base=BASE,
    shell:
        "multirater train --dataset {params.dataset} --splits {input.splits}"
        " --strategy {wildcards.strategy} --config {input.config} --out $(dirname {output})"
        " --base {params.base} --device {resources.device} --threads {threads}"
        " > {log} 2>&1"


rule predict:
    input:
        dataset=DATASET_INPUT,
        splits=f"{R}/data/splits.json",
        status=f"{R}/models/{{strategy}}/{{config_id}}/status.json",
    output:
        f"{R}/predictions/{{split}}/{{strategy}}/{{config_id}}.json",
    log:
        f"{R}/logs/predict/{{split}}/{{strategy}}/{{config_id}}.log",
    benchmark:
        f"{R}/benchmarks/predict/{{split}}/{{strategy}}/{{config_id}}.tsv"
    conda:
        ENV
    threads: config["resources"]["predict_threads"]
    resources:
        **PREDICT_RESOURCES,
    params:
        dataset=DATASET,
    shell:
        "multirater predict --model $(dirname {input.status}) --dataset {params.dataset}"
        " --splits {input.splits} --images {wildcards.split} --out {output}"
        " --device {resources.device} --threads {threads}"
        " --batch-size {resources.batch_size} > {log} 2>&1"


rule sweep:
    input:
        f"{R}/sweep/configs.tsv",
        status_files(),
        [prediction_files(split) for split in SPLITS],
