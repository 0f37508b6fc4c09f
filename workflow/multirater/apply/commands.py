"""Commands for using a calibrated ensemble on new images: count (per-image expected object counts).

pandas is imported inside the handler so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def skipped_images(meta: dict) -> dict[str, str]:
    """The images ``predict`` skipped on a folder (file name -> why), from the detections' meta."""
    skipped = meta.get("skipped_images") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in skipped.items()} if isinstance(skipped, dict) else {}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "count",
        help="per-image object counts of detections: expected count (sum of scores, an estimate when the scores "
        "are calibrated) and its std",
    )
    p.add_argument("--detections", required=True, help="detections file (a fused ensemble or one model's)")
    p.add_argument("--out", required=True, help="counts.csv to write, one row per image")
    p.add_argument("--threshold", type=_probability, default=0.5,
                   help="score at or above which a detection is counted in n_above_threshold (default 0.5)")
    p.add_argument("--accuracy", default=None, metavar="COUNTS.json",
                   help="count-accuracy file of the same approach on the test set (multirater count-accuracy): adds "
                   "count_lower/count_upper (expected +/- z sd) and how well the counts held there "
                   "(test_count_mae, test_coverage)")
    p.set_defaults(func=_count)


def _count(args: argparse.Namespace) -> int:
    import pandas as pd

    from multirater.ensembles.counting import image_counts
    from multirater.evaluation.counts import (
        accuracy_sentence, check_same_approach, read_count_accuracy, with_test_accuracy,
    )
    from multirater.io.detections import read_detections
    from multirater.core.files import write_csv

    detections = read_detections(args.detections)
    rows = image_counts(detections, args.threshold)
    columns = ["image_id", "file_name", "n_detections", "n_above_threshold", "expected_count", "count_std"]
    accuracy = None
    if args.accuracy is not None:
        evidence = read_count_accuracy(args.accuracy)
        check_same_approach(evidence, detections.meta, args.accuracy)
        accuracy = evidence["summary"]
        rows = with_test_accuracy(rows, accuracy)
        columns += ["count_lower", "count_upper", "test_count_mae", "test_coverage"]
    table = pd.DataFrame(rows, columns=columns + [c for c in (rows[0] if rows else {}) if c not in columns])
    skipped = skipped_images(detections.meta)
    if skipped:  # listed, with no count: they were never predicted on
        table["skipped"] = ""
        rest = pd.DataFrame({"file_name": list(skipped), "skipped": list(skipped.values())})
        whole = {c: "Int64" for c in ("image_id", "n_detections", "n_above_threshold")}  # integers beside blanks
        table = pd.concat([table.astype(whole), rest], ignore_index=True)
    write_csv(args.out, table)
    total = table.expected_count.sum()
    print(f"wrote {args.out}: {len(table) - len(skipped)} image(s), {total:.1f} objects expected in all")
    for name, problem in skipped.items():
        print(f"skipped {name}: {problem}; no detections and no count (its row in {args.out} is empty)")
    if accuracy is not None:
        print(accuracy_sentence(accuracy, args.accuracy))
    return 0
