"""Commands of the evaluation stage (workflow/rules/evaluation.smk): evaluate (mAP/mAR/D-ECE with
bootstrap), compare (paired differences), tables.

pandas and tabulate are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="mAP, AP50, AP75, mAR, D-ECE and reliability data, with bootstrap")
    p.add_argument("--gt", required=True, help="COCO ground truth (its images are the evaluated images)")
    p.add_argument("--pred", required=True, help="detections file")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--iou", type=float, nargs="+", default=[0.5, 0.75],
                   help="IoU thresholds of D-ECE (default 0.5 0.75)")
    p.add_argument("--bins", type=int, default=10, help="confidence bins of D-ECE (default 10)")
    p.add_argument("--matching", choices=("greedy", "hungarian"), default="greedy",
                   help="matching for D-ECE and reliability: greedy = COCO's rule (default), "
                   "hungarian = max total IoU")
    p.add_argument("--max-dets", type=int, default=100,
                   help="detections per image and category for mAP/mAR (default 100)")
    p.add_argument("--bootstrap", type=int, default=100,
                   help="bootstrap resamples of the test images (default 100; 0 = none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the resamples (default 0; same seed = paired resamples)")
    p.add_argument("--dece-features", nargs="*", default=[], choices=("cx", "cy", "w", "h"),
                   help="multivariate D-ECE: also bin by relative box centre/size")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("compare", help="paired bootstrap comparison of two metrics files (A - B)")
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument("--out", default=None, help="CSV to write (default: print only)")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("tables", help="metrics.csv, Table 1, significance and LSE vs RSE tables")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--models", nargs="*", default=[], help="single models' metrics: .../<strategy>/<config_id>.json")
    p.add_argument("--ensembles", nargs="*", default=[], help="ensembles' metrics: .../<lse|rse>/<size>.json")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_tables)


def _evaluate(args: argparse.Namespace) -> int:
    from multirater.io.detections import read_detections
    from multirater.core.files import read_json, write_json
    from multirater.evaluation.metrics import evaluate

    gt = read_json(args.gt)
    detections = read_detections(args.pred)
    result = evaluate(
        gt,
        detections,
        iou_thresholds=tuple(args.iou),
        bins=args.bins,
        matching=args.matching,
        max_dets=args.max_dets,
        bootstrap=args.bootstrap,
        seed=args.seed,
        dece_features=tuple(args.dece_features),
        gt_name=args.gt,
        pred_name=args.pred,
    )
    write_json(args.out, result)
    summary = ", ".join(
        f"{r['metric']}{'' if r['iou'] is None else '@' + format(r['iou'], 'g')}={r['value']:.4f}"
        for r in result["metrics"]
    )
    print(f"{args.pred}: {summary}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd
    from tabulate import tabulate

    from multirater.evaluation.bootstrap import compare
    from multirater.core.files import read_json, write_csv

    rows = compare(read_json(args.a), read_json(args.b), args.a, args.b)
    frame = pd.DataFrame(rows)
    if args.out:
        write_csv(args.out, frame)
    sys.stdout.write(tabulate(frame, headers="keys", showindex=False, floatfmt=".4f") + "\n")
    return 0


def _tables(args: argparse.Namespace) -> int:
    from multirater.evaluation.tables import write_tables

    for path in write_tables(args.selection, args.models, args.ensembles, args.out_dir):
        print(f"wrote {path}")
    return 0
