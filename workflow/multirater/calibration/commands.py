"""Commands of the calibration stage (workflow/rules/calibration.smk): calibrate (fit a post-hoc calibrator on
validation detections), recalibrate (apply it to other detections), count-accuracy (do the expected counts
hold against a reference?), calibration-table and calibration-figure (every approach, uncalibrated and
calibrated, against its training cost).

scikit-learn, scipy and pandas are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse

from multirater.calibration.methods import METHODS, TARGETS


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def _iou(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help="fit a post-hoc calibrator on validation detections")
    p.add_argument("--detections", required=True, help="validation detections file (raw scores)")
    p.add_argument("--dataset", required=True, help="dataset.yaml: the raters' labels and the test label sets")
    p.add_argument("--method", required=True, choices=list(METHODS),
                   help="logistic (Platt on logit(score)), temperature, isotonic, or detection-aware "
                   "(logistic on logit(score) and the relative box centre and size)")
    p.add_argument("--target", required=True, choices=list(TARGETS),
                   help="hard: 1 if matched to a box of --reference (only images the reference labelled); "
                   "soft: fraction of the raters who labelled the image whose boxes match the detection")
    p.add_argument("--reference", default=None,
                   help="hard target's labels: a rater, consensus, or majority (matched by more than half the "
                   "raters); default: the rater of an rs-<rater> model, majority otherwise")
    p.add_argument("--iou", type=_iou, default=0.5, help="IoU at which a detection matches a box (default 0.5)")
    p.add_argument("--out", required=True, help="calibrator JSON to write")
    p.set_defaults(func=_calibrate, imports=("multirater.calibration.fitting",))

    p = subparsers.add_parser("recalibrate", help="apply a fitted calibrator to detections")
    p.add_argument("--calibrator", required=True, help="calibrator JSON (from multirater calibrate)")
    p.add_argument("--detections", required=True, help="detections file to calibrate (raw scores)")
    p.add_argument("--out", required=True, help="calibrated detections file to write")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--dataset", default=None,
                       help="dataset.yaml holding the images (image sizes, for a detection-aware calibrator)")
    sizes.add_argument("--images", default=None,
                       help="folder of the images (detections predicted on a folder; for detection-aware)")
    p.set_defaults(func=_recalibrate)

    p = subparsers.add_parser("count-accuracy",
                              help="expected counts (sum of scores) per image against a reference's true counts")
    p.add_argument("--detections", required=True, help="detections file (calibrated or not)")
    truth = p.add_mutually_exclusive_group(required=True)
    truth.add_argument("--gt", default=None, help="COCO file whose boxes are the true counts")
    truth.add_argument("--dataset", default=None, help="dataset.yaml; the true counts are --reference's boxes")
    p.add_argument("--reference", default="consensus",
                   help="with --dataset: a rater or a test label set, e.g. consensus or majority (default "
                   "consensus)")
    p.add_argument("--threshold", type=_probability, default=0.5,
                   help="score at or above which a detection is counted in the thresholded count (default 0.5)")
    p.add_argument("--z", type=_positive, default=1.96, help="interval E +/- z sd (default 1.96, nominal 95 %%)")
    p.add_argument("--out", required=True, help="JSON to write: summary and one row per image")
    p.set_defaults(func=_count_accuracy)

    p = subparsers.add_parser("calibration-table",
                              help="every approach uncalibrated and calibrated: D-ECE, mAP, mAR, counts, training cost")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics files (multirater evaluate)")
    p.add_argument("--counts", nargs="+", required=True,
                   help="count-accuracy files, one per row; each is joined to the metrics file of the same detections")
    p.add_argument("--train-benchmarks", required=True,
                   help="folder of the training jobs' benchmark files, <strategy>/<config_id>.tsv (column s)")
    p.add_argument("--out", required=True, help="CSV to write")
    p.set_defaults(func=_calibration_table)

    p = subparsers.add_parser("calibration-figure", help="D-ECE against training cost per approach (PNG and PDF)")
    p.add_argument("--table", required=True, help="the calibration table (multirater calibration-table)")
    p.add_argument("--out", required=True, help="output stem (writes STEM.png and STEM.pdf)")
    p.set_defaults(func=_calibration_figure)


def _calibrate(args: argparse.Namespace) -> int:
    from multirater.calibration.calibrator_files import write_calibrator
    from multirater.calibration.fitting import fit_on_validation
    from multirater.core.errors import UserError
    from multirater.data.dataset import load_dataset
    from multirater.io.detections import read_detections

    if not TARGETS[args.target].reference and args.reference is not None:
        raise UserError("--reference applies to --target hard only (the soft target uses every rater)")
    detections = read_detections(args.detections)
    dataset = load_dataset(args.dataset)
    calibrator = fit_on_validation(detections, dataset, args.method, args.target, args.iou, args.reference,
                                   args.detections)
    write_calibrator(args.out, calibrator)
    fitted = calibrator.fitted
    against = f"{args.target} vs {fitted['reference']}" if TARGETS[args.target].reference else \
        f"{args.target} (multi-rater)"
    print(f"wrote {args.out}: {args.method} on {fitted['n_detections']} detections, target {against} at IoU "
          f"{args.iou:g} (mean score {fitted['mean_score']:.3f}, mean target {fitted['mean_target']:.3f})")
    if fitted["n_images_left_out"]:
        print(f"fitted on the {fitted['n_images']} image(s) {fitted['reference']} labelled; left out "
              f"{fitted['n_detections_left_out']} detections on {fitted['n_images_left_out']} image(s) it did not "
              "label (raters labelled different images)")
    return 0


def _recalibrate(args: argparse.Namespace) -> int:
    from multirater.calibration.calibrator_files import read_calibrator
    from multirater.calibration.fitting import recalibrate
    from multirater.calibration.image_sizes import dataset_image_sizes, folder_image_sizes
    from multirater.core.errors import UserError
    from multirater.data.dataset import load_dataset
    from multirater.io.detections import read_detections, write_detections

    calibrator = read_calibrator(args.calibrator)
    detections = read_detections(args.detections)
    sizes = None
    if calibrator.needs_boxes:
        if args.dataset is not None:
            sizes = dataset_image_sizes(load_dataset(args.dataset))
        elif args.images is not None:
            sizes = folder_image_sizes(args.images, detections, args.detections)
        else:
            raise UserError("a detection-aware calibrator needs the image sizes: give --dataset or --images",
                            args.calibrator)
    calibrated = recalibrate(detections, calibrator, sizes, args.detections, args.calibrator)
    write_detections(args.out, calibrated)
    print(f"wrote {args.out}: {len(calibrated)} detections on {len(calibrated.image_ids)} images, "
          f"{calibrator.method}-calibrated (sum of scores {calibrated.scores.sum():.1f}, "
          f"was {detections.scores.sum():.1f})")
    return 0


def _count_accuracy(args: argparse.Namespace) -> int:
    from multirater.core.errors import UserError
    from multirater.core.files import read_json, write_json
    from multirater.data.dataset import load_dataset
    from multirater.evaluation.counts import count_accuracy, true_counts
    from multirater.io.detections import read_detections

    detections = read_detections(args.detections)
    if args.gt is not None:
        coco, reference = read_json(args.gt), args.gt
    else:
        dataset = load_dataset(args.dataset)
        if args.reference not in dataset.sources:
            raise UserError(f"--reference {args.reference!r} is not a source of the dataset "
                            f"(known: {', '.join(dataset.sources)})", args.dataset)
        coco, reference = dataset.coco(args.reference), str(dataset.coco_path(args.reference))
    result = count_accuracy(detections, true_counts(coco, detections.image_ids, reference), args.threshold, args.z)
    meta = detections.meta if isinstance(detections.meta, dict) else {}
    write_json(args.out, {"detections": args.detections, "reference": reference,
                          "identity": meta.get("identity"), "calibration": meta.get("calibration"), **result})
    s = result["summary"]
    if s["n_images"]:
        print(f"{args.detections}: {s['n_images']} images, true {s['mean_true_count']:.2f} vs expected "
              f"{s['mean_expected_count']:.2f} per image; MAE {s['mae_expected']:.2f} (threshold "
              f"{args.threshold:g}: {s['mae_threshold']:.2f}); coverage {s['coverage']:.2f}")
    return 0


def _calibration_table(args: argparse.Namespace) -> int:
    from multirater.calibration.tables import calibration_table
    from multirater.core.files import write_csv

    table, missing = calibration_table(args.metrics, args.counts, args.train_benchmarks)
    write_csv(args.out, table)
    for path in missing:
        print(f"no benchmark file {path}: that approach's training cost is left empty")
    print(f"wrote {args.out}: {len(table)} rows")
    for row in table.to_dict("records"):
        variant = row["method"] + (f"-{row['target']}" if row["target"] else "")
        dece = [c for c in table.columns if c.startswith("D-ECE@") and "_" not in c]
        print(f"  {row['approach']:>10} {variant:<22} " + " ".join(f"{c} {row[c]:.3f}" for c in dece)
              + f"  mAP {row['mAP']:.3f}  count MAE {row['count_mae']:.2f}  coverage {row['count_coverage']:.2f}")
    return 0


def _calibration_figure(args: argparse.Namespace) -> int:
    import pandas as pd

    from multirater.core.errors import UserError
    from multirater.calibration.cost_figure import NEEDED_COLUMNS, calibration_cost_figure
    from multirater.core.plot_style import save_figure

    try:
        table = pd.read_csv(args.table, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise UserError("file not found", args.table) from None
    missing = [c for c in NEEDED_COLUMNS if c not in table.columns]
    if missing or not any(c.startswith("D-ECE@") for c in table.columns):
        raise UserError(f"needs columns {list(NEEDED_COLUMNS)} and D-ECE@<iou>, got {list(table.columns)}",
                        args.table)
    for path in save_figure(calibration_cost_figure(table), args.out):
        print(f"wrote {path}")
    return 0
