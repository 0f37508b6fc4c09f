# Stage 7: everything the HTML report shows (figures and tables, each with a caption from
# workflow/report/; the front page is workflow/report/workflow.rst). `make demo` runs the workflow
# and then writes results/report.html (snakemake --report results/report.html --report-after-run).


rule report:
    input:
        FIGURES,
        TABLES,
        f"{R}/selection/selection.csv",
        f"{R}/agreement/counts.csv",
        f"{R}/agreement/f1_vs_iou.csv",
        CALIBRATION_OUTPUTS,
