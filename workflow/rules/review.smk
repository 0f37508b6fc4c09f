# Stage 9: from the ensemble back to the raters. The detections `apply` counts with (the calibrated headline
# with calibration.enabled, else the apply ensemble) are ranked for review: results/review/<subject>/
# images.csv (images by expected disagreement), boxes.csv (boxes by p(1-p), with their votes) and
# contact_sheet.png (the review.top most uncertain boxes, in the report), and exported for annotation tools
# (results/export/<subject>/: napari-organoid-counter label files, a COCO results file).
# Subjects: `apply` (the new images of apply.images, after the apply target's rules) and `test` (the same
# approach on the test images; part of `all`, so the report shows its contact sheet). The `review` target
# builds the apply subject when apply.images is set, the test subject otherwise.

from multirater.review.workflow_files import (
    review_detections,
    review_images_flag,
    review_subjects,
)

REVIEW_SUBJECTS = review_subjects(config)
REVIEW_SUBJECT = REVIEW_SUBJECTS[-1]
REVIEW_FILES = ["images.csv", "boxes.csv", "contact_sheet.png"]
# input and params functions (multirater.review.workflow_files); apply's config errors as one line
REVIEW_DETECTIONS = lambda w: workflow_error_of(
    review_detections,
    w.subject,
    config,
    lambda: apply_ensemble(config, RATERS),
    APPROACH_FILES,
    R,
)
REVIEW_IMAGES = lambda w: review_images_flag(w.subject, config, dataset_file()(w))


wildcard_constraints:
    subject="|".join(REVIEW_SUBJECTS),


rule review_queue:
    input:
        detections=REVIEW_DETECTIONS,
        dataset=DATASET_INPUT,
    output:
        images=f"{R}/review/{{subject}}/images.csv",
        boxes=f"{R}/review/{{subject}}/boxes.csv",
        sheet=report(
            f"{R}/review/{{subject}}/contact_sheet.png",
            caption="../report/review.rst",
            category="Review",
            subcategory="{subject} images",
        ),
    log:
        f"{R}/logs/review/{{subject}}/review.log",
    benchmark:
        f"{R}/benchmarks/review/{{subject}}/review.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        images=REVIEW_IMAGES,
        folder=output_folder("images"),
        top=config["review"]["top"],
    shell:
        "multirater review --detections {input.detections} {params.images}"
        " --top {params.top} --out {params.folder} > {log} 2>&1"


rule export_napari:
    input:
        detections=REVIEW_DETECTIONS,
        dataset=DATASET_INPUT,
    output:
        directory(f"{R}/export/{{subject}}/napari-organoid-counter"),
    log:
        f"{R}/logs/export/{{subject}}/napari-organoid-counter.log",
    benchmark:
        f"{R}/benchmarks/export/{{subject}}/napari-organoid-counter.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=10,
    params:
        images=REVIEW_IMAGES,
    shell:
        "multirater export --format napari-organoid-counter --detections {input.detections}"
        " {params.images} --out {output} > {log} 2>&1"


rule export_coco:
    input:
        REVIEW_DETECTIONS,
    output:
        f"{R}/export/{{subject}}/coco.json",
    log:
        f"{R}/logs/export/{{subject}}/coco.log",
    benchmark:
        f"{R}/benchmarks/export/{{subject}}/coco.tsv"
    conda:
        ENV
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=10,
    shell:
        "multirater export --format coco --detections {input} --out {output} > {log} 2>&1"


localrules:
    review_queue,
    export_napari,
    export_coco,
    review,


rule review:
    input:
        expand(f"{R}/review/{REVIEW_SUBJECT}/{{file}}", file=REVIEW_FILES),
        f"{R}/export/{REVIEW_SUBJECT}/napari-organoid-counter",
        f"{R}/export/{REVIEW_SUBJECT}/coco.json",


# The test images' review queue is cheap (the detections exist already): `all` builds it, and the report
# shows its contact sheet.
ALL_OUTPUTS.extend(expand(f"{R}/review/test/{{file}}", file=REVIEW_FILES))
