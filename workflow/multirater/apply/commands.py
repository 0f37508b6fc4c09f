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


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "count",
        help="per-image object counts from calibrated detections: expected count (sum of scores) and its std",
    )
    p.add_argument("--detections", required=True, help="detections file (a fused ensemble or one model's)")
    p.add_argument("--out", required=True, help="counts.csv to write, one row per image")
    p.add_argument("--threshold", type=_probability, default=0.5,
                   help="score at or above which a detection is counted in n_above_threshold (default 0.5)")
    p.set_defaults(func=_count)


def _count(args: argparse.Namespace) -> int:
    import pandas as pd

    from multirater.ensembles.counting import image_counts
    from multirater.io.detections import read_detections
    from multirater.core.files import write_csv

    rows = image_counts(read_detections(args.detections), args.threshold)
    columns = ["image_id", "file_name", "n_detections", "n_above_threshold", "expected_count", "count_std"]
    table = pd.DataFrame(rows, columns=columns + [c for c in (rows[0] if rows else {}) if c not in columns])
    write_csv(args.out, table)
    total = table.expected_count.sum()
    print(f"wrote {args.out}: {len(table)} image(s), {total:.1f} objects expected in all")
    return 0
