# Stage 7: everything the HTML report shows (figures and tables, each with a caption from
# workflow/report/). Build it with: snakemake report && snakemake --report results/report.html


rule report:
    input:
        FIGURES,
        TABLES,
        f"{R}/selection/selection.csv",
        f"{R}/agreement/counts.csv",
        f"{R}/agreement/f1_vs_iou.csv",
