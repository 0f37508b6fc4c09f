# Stage 1: the dataset (synthetic or the user's manifest), its validation, and the splits.


if MANIFEST is None:

    rule synth:
        output:
            directory(f"{R}/data/synthetic"),
        log:
            f"{R}/logs/synth.log",
        benchmark:
            f"{R}/benchmarks/synth.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            seed=config["dataset"]["synthetic"]["seed"],
            images=config["dataset"]["synthetic"]["images"],
            consensus=config["dataset"]["synthetic"]["consensus_images"],
            raters=config["dataset"]["synthetic"]["raters"],
            size=config["dataset"]["synthetic"]["size"],
        shell:
            "multirater synth --out {output} --seed {params.seed} --images {params.images}"
            " --consensus-images {params.consensus} --raters {params.raters}"
            " --size {params.size} > {log} 2>&1"


rule check:
    input:
        DATASET_INPUT,
    output:
        f"{R}/data/check.txt",
    log:
        f"{R}/logs/check.log",
    benchmark:
        f"{R}/benchmarks/check.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        dataset=DATASET,
    shell:
        "multirater check --dataset {params.dataset} > {output} 2> {log}"


rule split:
    input:
        dataset=DATASET_INPUT,
        check=f"{R}/data/check.txt",
    output:
        f"{R}/data/splits.json",
    log:
        f"{R}/logs/split.log",
    benchmark:
        f"{R}/benchmarks/split.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=DATASET,
        val_fraction=config["splits"]["val_fraction"],
        seed=config["splits"]["seed"],
    shell:
        "multirater split --dataset {params.dataset} --out {output}"
        " --val-fraction {params.val_fraction} --seed {params.seed} > {log} 2>&1"


rule data:
    input:
        f"{R}/data/check.txt",
        f"{R}/data/splits.json",
