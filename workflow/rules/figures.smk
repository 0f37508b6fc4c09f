# Stage 6: the paper's calibration figures (PNG and PDF, one style). Figures 1-2 come from the
# agreement stage. Figure 3: reliability diagrams of LSE vs RSE at the largest ensemble size.
# Figure 4: D-ECE and mAP against ensemble size.


rule figure3:
    input:
        lse=f"{R}/metrics/ensembles/lse/{max(SIZES)}.json",
        rse=f"{R}/metrics/ensembles/rse/{max(SIZES)}.json",
    output:
        png=report(
            f"{R}/figures/fig3_reliability.png",
            caption="../report/fig3.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/fig3_reliability.pdf",
    log:
        f"{R}/logs/figure3.log",
    benchmark:
        f"{R}/benchmarks/figure3.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        size=max(SIZES),
        stem=output_stem("png"),
    shell:
        "multirater figures reliability --lse {input.lse} --rse {input.rse}"
        " --size {params.size} --out {params.stem} > {log} 2>&1"


rule figure4:
    input:
        f"{R}/tables/metrics.csv",
    output:
        png=report(
            f"{R}/figures/fig4_ensemble_size.png",
            caption="../report/fig4.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/fig4_ensemble_size.pdf",
    log:
        f"{R}/logs/figure4.log",
    benchmark:
        f"{R}/benchmarks/figure4.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stem=output_stem("png"),
    shell:
        "multirater figures ensemble-size --metrics {input} --out {params.stem} > {log} 2>&1"


rule figures:
    input:
        FIGURES,
