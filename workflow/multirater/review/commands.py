"""Commands of the review stage (workflow/rules/review.smk): review (the review queue of a detections file),
export (detections for an annotation tool), review-validate (the queue against a synthetic dataset's raters).

Every --out is written whole or not at all: a folder is built beside its destination and moved into place, a
file is written to a temporary sibling and renamed (``core.files``). pandas, matplotlib and torch are imported
inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse

from multirater.core.errors import UserError
from multirater.data.formats import EXPORT_FORMATS, FORMATS  # the format registry, a light module

DEFAULT_TOP = 20
DEFAULT_EXPORT_RATER = "ensemble"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def _add_images(p: argparse.ArgumentParser, needed: str) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--images", default=None, metavar="DIR",
                       help=f"folder of the new images the detections were predicted on ({needed})")
    group.add_argument("--dataset", default=None, metavar="dataset.yaml",
                       help="or: the dataset whose images (e.g. the test images) the detections were made on")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "review", help="the review queue: images and boxes ranked by expected disagreement p(1-p), a contact sheet")
    p.add_argument("--detections", required=True, help="detections file (a fused ensemble's, calibrated or not)")
    _add_images(p, "file names from the detections' meta.file_names")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write: images.csv, boxes.csv, contact_sheet.png")
    p.add_argument("--top", type=_positive_int, default=DEFAULT_TOP,
                   help=f"boxes on the contact sheet, most uncertain first (default {DEFAULT_TOP})")
    p.set_defaults(func=_review, imports=("matplotlib.pyplot", "pandas", "multirater.review.contact_sheet"))

    p = subparsers.add_parser("export", help="detections in an annotation tool's format: " + ", ".join(EXPORT_FORMATS))
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="; ".join(f"{name}: {FORMATS[name].description} (--out: a {FORMATS[name].target_kind})"
                                  for name in EXPORT_FORMATS))
    p.add_argument("--detections", required=True, help="detections file")
    _add_images(p, "napari-organoid-counter: names each label file after its image")
    p.add_argument("--out", required=True, help="folder (napari-organoid-counter) or file (coco) to write")
    p.add_argument("--min-score", type=_probability, default=0.0,
                   help="export only detections scoring at least this (default 0: every detection)")
    p.add_argument("--rater", default=DEFAULT_EXPORT_RATER,
                   help="napari-organoid-counter: the subfolder of --out the label files go in, the rater name "
                        f"`multirater import --labels OUT` reads them as (default {DEFAULT_EXPORT_RATER})")
    p.set_defaults(func=_export)

    p = subparsers.add_parser(
        "review-validate",
        help="synthetic data: of the K most uncertain boxes, the share that are objects only one rater labelled")
    p.add_argument("--boxes", required=True, help="boxes.csv written by multirater review")
    p.add_argument("--dataset", required=True,
                   help="the synthetic dataset of the reviewed images (multirater synth): its rater files are the "
                        "truth")
    p.add_argument("--top", type=_positive_int, default=DEFAULT_TOP, help=f"K (default {DEFAULT_TOP})")
    p.add_argument("--iou", type=float, default=0.5,
                   help="IoU at which a box is a box of a labelled object (default 0.5)")
    p.add_argument("--out", default=None, help="JSON file to write the shares to (default: print only)")
    p.set_defaults(func=_review_validate)


def _review(args: argparse.Namespace) -> int:
    from multirater.core.files import atomic_folder, write_csv
    from multirater.io.detections import read_detections
    from multirater.review.contact_sheet import write_contact_sheet
    from multirater.review.image_files import image_files
    from multirater.review.ranking import DISAGREEMENT, box_table, image_table, votes

    detections = read_detections(args.detections)
    files = image_files(detections, args.detections, args.images, args.dataset)
    boxes = box_table(detections, files.names)
    images = image_table(detections, files.names)
    _, _, models = votes(detections)
    top = boxes.head(args.top)
    with atomic_folder(args.out, "review") as staging:
        write_csv(staging / "images.csv", images)
        write_csv(staging / "boxes.csv", boxes)
        write_contact_sheet(staging / "contact_sheet.png", top, files, models)
    print(f"wrote {args.out}: {len(images)} images, {len(boxes)} boxes, the {len(top)} most uncertain on "
          f"contact_sheet.png")
    if len(images):
        first = images.iloc[0]
        print(f"review first: {first.file_name} (expected disagreement {first[DISAGREEMENT]:.2f}, "
              f"{first.expected_count:.1f} +/- {first.count_std:.1f} objects)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from multirater.core.files import atomic_folder
    from multirater.data.manifest import RATER_NAME
    from multirater.io.detections import Detections, read_detections
    from multirater.review.image_files import image_files

    fmt = FORMATS[args.format]
    if fmt.target_kind == "folder" and not RATER_NAME.match(args.rater):
        raise UserError(f"must match {RATER_NAME.pattern} (it becomes a rater name), got {args.rater!r}", None,
                        "--rater")
    detections = read_detections(args.detections)
    if fmt.target_kind == "folder" or args.images is not None or args.dataset is not None:
        names = image_files(detections, args.detections, args.images, args.dataset, must_exist=False).names
    else:
        names = {}
    keep = detections.scores >= args.min_score
    kept = Detections(detections.image_ids, detections.image_id[keep], detections.category_id[keep],
                      detections.boxes[keep], detections.scores[keep], meta=detections.meta)
    write = fmt.export_writer()
    if fmt.target_kind == "folder":
        with atomic_folder(args.out, "export") as staging:
            summary = write(kept, names, staging / args.rater)
    else:
        summary = write(kept, names, args.out)
    dropped = f" ({len(detections) - len(kept)} below --min-score {args.min_score:g} left out)" if len(kept) < len(
        detections) else ""
    print(f"wrote {args.out} ({args.format}): {summary}{dropped}")
    return 0


def _review_validate(args: argparse.Namespace) -> int:
    from multirater.core.files import write_json
    from multirater.data.dataset import load_dataset
    from multirater.review.ranking import read_box_table
    from multirater.review.validation import labelled_objects, share_summary, truth_raters

    if not 0.0 < args.iou <= 1.0:
        raise UserError(f"must lie in (0, 1], got {args.iou}", None, "--iou")
    boxes = read_box_table(args.boxes)
    dataset = load_dataset(args.dataset)
    objects = labelled_objects({r: dataset.coco(r) for r in dataset.rater_names},
                               {r: str(dataset.coco_path(r)) for r in dataset.rater_names})
    try:
        n_raters = truth_raters(boxes, objects, args.iou)
    except UserError as exc:
        raise UserError(exc.problem, exc.file or args.boxes, exc.item) from None
    summary = {"boxes": args.boxes, "dataset": args.dataset, "iou": args.iou,
               **share_summary(n_raters, args.top, len(dataset.rater_names))}
    if args.out is not None:
        write_json(args.out, summary)
    top, every = summary["top"], summary["all"]
    if not every["boxes"]:
        print("no boxes to validate")
        return 0
    print(f"objects only one rater labelled: {top['share_single']:.2f} of the {top['boxes']} most uncertain boxes "
          f"({top['n_single']}), {every['share_single']:.3f} of all {every['boxes']} ({every['n_single']})")
    if top["n_labelled"] and every["n_labelled"]:
        print(f"among boxes of labelled objects: {top['share_single_of_labelled']:.2f} of the {top['n_labelled']} "
              f"in the top {top['boxes']}, {every['share_single_of_labelled']:.2f} of all {every['n_labelled']}")
    return 0
