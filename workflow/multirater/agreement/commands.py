"""Commands of the agreement stage (workflow/rules/agreement.smk): agreement.

With second annotation passes in the dataset (manifest ``repeats``), f1_vs_iou.csv and Figure 2b
also hold intra-rater agreement, and the printed summary compares it with inter-rater agreement.

The statistics and the figures are separate modules (figures draw what statistics computes); this
command runs both and writes their outputs. pandas and matplotlib are imported inside the handler so
the CLI starts fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multirater.core.errors import UserError

# File names written by ``multirater agreement --out DIR`` (figures as .png and .pdf).
COUNTS_CSV = "counts.csv"
F1_CSV = "f1_vs_iou.csv"
FIGURE1 = "fig1_rater_agreement"
FIGURE2 = "fig2_interrater"
OUTPUT_FILES = (COUNTS_CSV, F1_CSV, FIGURE1 + ".png", FIGURE1 + ".pdf", FIGURE2 + ".png", FIGURE2 + ".pdf")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``agreement`` subcommand."""
    p = subparsers.add_parser("agreement",
                              help="inter-rater counts, F1 vs IoU (and intra-rater F1 with second passes), Figures 1-2")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image", type=int, default=None,
                   help="image id shown in Figure 1 (default: the first image two or more raters labelled)")
    p.set_defaults(func=_agreement, imports=("matplotlib.pyplot", "multirater.agreement.figures",
                                              "multirater.agreement.statistics"))


def _agreement(args: argparse.Namespace) -> int:
    """Write counts.csv, f1_vs_iou.csv and Figures 1-2 into ``--out``; all or nothing."""
    from multirater.agreement.figures import figure_interrater, figure_matched_boxes
    from multirater.agreement.statistics import (
        agreement_summary,
        counts,
        f1_vs_iou,
        images_with_two_or_more_raters,
    )
    from multirater.core.files import write_csv
    from multirater.data.dataset import load_dataset
    from multirater.core.plot_style import save_figure

    dataset = load_dataset(args.dataset)
    shared = images_with_two_or_more_raters(dataset)  # raters may have labelled different images
    image_id = (shared or dataset.rater_image_ids)[0] if args.image is None else args.image
    if image_id not in dataset.rater_image_ids:
        raise UserError(f"image id {image_id} is not a multi-rater image of {dataset.manifest}", None, "--image")
    out = Path(args.out)
    count_table = counts(dataset)
    f1_table = f1_vs_iou(dataset)
    written: list[Path] = []
    try:
        write_csv(out / COUNTS_CSV, count_table)
        written.append(out / COUNTS_CSV)
        write_csv(out / F1_CSV, f1_table)
        written.append(out / F1_CSV)
        written += save_figure(figure_matched_boxes(dataset, image_id), out / FIGURE1)
        written += save_figure(figure_interrater(count_table, f1_table), out / FIGURE2)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for path in written:
        print(f"wrote {path}")
    print(agreement_summary(f1_table))
    return 0
