# Stage 1: the dataset (synthetic or the user's manifest), its validation, and the splits; and the
# base dataset of the pretrain job (other images, never the experiment's labels) with its own split.
from multirater.data.commands import synthetic_flags

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
            **CPU_JOB,
            mem_mb=2000,
            runtime=30,
        params:
            seed=config["dataset"]["synthetic"]["seed"],
            images=config["dataset"]["synthetic"]["images"],
            consensus=config["dataset"]["synthetic"]["consensus_images"],
            raters=config["dataset"]["synthetic"]["raters"],
            size=config["dataset"]["synthetic"]["size"],
            preset=config["dataset"]["synthetic"]["preset"],
            repeat_images=config["dataset"]["synthetic"]["repeat_images"],
            # bias, coverage, rater test labels and rater styles, where not the defaults
            flags=synthetic_flags(config["dataset"]["synthetic"]),
        shell:
            "multirater synth --out {output} --seed {params.seed} --images {params.images}"
            " --consensus-images {params.consensus} --raters {params.raters}"
            " --size {params.size} --preset {params.preset}"
            " --repeat-images {params.repeat_images} {params.flags} > {log} 2>&1"


if BASE_CHECKPOINT is None and BASE_MANIFEST is None:

    # Images from a random stream of their own, labelled by the simulated pre-annotation detector
    # (multirater.data.synthetic.base): the independent base model's training data.
    rule synth_base:
        output:
            directory(f"{R}/data/base"),
        log:
            f"{R}/logs/synth_base.log",
        benchmark:
            f"{R}/benchmarks/synth_base.tsv"
        conda:
            ENV
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=2000,
            runtime=30,
        params:
            seed=config["dataset"]["synthetic"]["seed"],
            images=config["dataset"]["synthetic"]["base_images"],
            size=config["dataset"]["synthetic"]["size"],
        shell:
            "multirater synth --labels detector --out {output} --seed {params.seed}"
            " --images {params.images} --size {params.size} > {log} 2>&1"


if BASE_CHECKPOINT is None:

    # The pretrain job's own train/validation split of the base dataset.
    rule base_split:
        input:
            dataset=BASE_DATASET_INPUT,
        output:
            BASE_SPLITS,
        log:
            f"{R}/logs/base_split.log",
        benchmark:
            f"{R}/benchmarks/base_split.tsv"
        conda:
            ENV
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=2000,
            runtime=10,
        params:
            dataset=dataset_file(BASE_DATASET_INPUT, generated=BASE_MANIFEST is None),
            val_fraction=config["splits"]["val_fraction"],
            seed=config["splits"]["seed"],
        shell:
            "multirater split --dataset {params.dataset} --out {output}"
            " --val-fraction {params.val_fraction} --seed {params.seed} > {log} 2>&1"


rule check:
    input:
        dataset=DATASET_INPUT,
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
        **CPU_JOB,
        mem_mb=2000,
        runtime=30,
    params:
        dataset=dataset_file(),
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
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        dataset=dataset_file(),
        val_fraction=config["splits"]["val_fraction"],
        seed=config["splits"]["seed"],
    shell:
        "multirater split --dataset {params.dataset} --out {output}"
        " --val-fraction {params.val_fraction} --seed {params.seed} > {log} 2>&1"


rule data:
    input:
        f"{R}/data/check.txt",
        f"{R}/data/splits.json",
        DERIVED_LABEL_SETS.values(),


if MAJORITY_VOTERS:

    # No consensus: the majority of the test label sets stands in for it (common.smk, MAJORITY_VOTERS).
    rule majority:
        input:
            DATASET_INPUT,
        output:
            DERIVED_LABEL_SETS[MAJORITY],
        log:
            f"{R}/logs/majority.log",
        benchmark:
            f"{R}/benchmarks/majority.tsv"
        conda:
            ENV
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=2000,
            runtime=10,
        params:
            label_sets=" ".join(MAJORITY_VOTERS),
        shell:
            "multirater consensus --dataset {input} --label-sets {params.label_sets}"
            " --out {output} > {log} 2>&1"
