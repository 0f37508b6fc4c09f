# Stage 1b: inter-rater agreement (object counts, F1 vs IoU) and Figures 1-2.


rule agreement_stage:
    input:
        dataset=DATASET_INPUT,
        check=f"{R}/data/check.txt",
    output:
        counts=report(
            f"{R}/agreement/counts.csv",
            caption="../report/counts.rst",
            category="Agreement",
        ),
        f1=report(
            f"{R}/agreement/f1_vs_iou.csv",
            caption="../report/f1_vs_iou.rst",
            category="Agreement",
        ),
        fig1_png=report(
            f"{R}/agreement/fig1_rater_agreement.png",
            caption="../report/fig1.rst",
            category="Figures",
        ),
        fig1_pdf=f"{R}/agreement/fig1_rater_agreement.pdf",
        fig2_png=report(
            f"{R}/agreement/fig2_interrater.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
        fig2_pdf=f"{R}/agreement/fig2_interrater.pdf",
    log:
        f"{R}/logs/agreement.log",
    benchmark:
        f"{R}/benchmarks/agreement.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=30,
    params:
        dataset=dataset_file(),
        out_dir=output_folder("counts"),
    shell:
        "multirater agreement --dataset {params.dataset} --out {params.out_dir} > {log} 2>&1"


rule figure_agreement:
    input:
        f"{R}/agreement/{{stem}}.{{ext}}",
    output:
        f"{R}/figures/{{stem}}.{{ext}}",
    log:
        f"{R}/logs/figures/{{stem}}.{{ext}}.log",
    benchmark:
        f"{R}/benchmarks/figures/{{stem}}.{{ext}}.tsv"
    wildcard_constraints:
        stem="fig1_rater_agreement|fig2_interrater",
        ext="png|pdf",
    conda:
        ENV
    threads: 1
    shell:
        "cp {input} {output} 2> {log}"


rule agreement:
    input:
        f"{R}/agreement/counts.csv",
        f"{R}/agreement/f1_vs_iou.csv",
        f"{R}/figures/fig1_rater_agreement.png",
        f"{R}/figures/fig2_interrater.png",
