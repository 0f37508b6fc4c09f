"""Commands of the evaluation stage (workflow/rules/evaluation.smk): evaluate (mAP/mAR/D-ECE with
bootstrap), compare (paired differences), tables.

pandas and tabulate are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys

from multirater.core.errors import UserError
from multirater.evaluation.settings import DECE_FEATURES, DECE_REFERENCE_DRAWS, MATCHINGS, settings_problem

# The command line's name of each evaluation setting, so that a problem names the flag the user typed.
FLAGS = {"iou_thresholds": "--iou", "bins": "--bins", "matching": "--matching", "max_dets": "--max-dets",
         "bootstrap": "--bootstrap", "dece_features": "--dece-features",
         "dece_reference_draws": "--dece-reference-draws"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="mAP, AP50, AP75, mAR, D-ECE and reliability data, with bootstrap")
    p.add_argument("--gt", required=True, help="COCO ground truth (its images are the evaluated images)")
    p.add_argument("--label-set", default=None,
                   help="name of the test label set --gt holds (recorded as settings.label_set; the tables' "
                   "label_sets.csv reads it)")
    p.add_argument("--soft-gt", nargs="+", default=[], metavar="LABELS.json",
                   help="label sets of the same images (e.g. each rater's): adds D-ECE-soft at each IoU, D-ECE "
                   "against the share of these label sets whose boxes a detection matches")
    p.add_argument("--pred", required=True, help="detections file")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    _evaluation_flags(p)
    p.add_argument("--dece-reference-draws", type=int, default=DECE_REFERENCE_DRAWS,
                   help="draws of the D-ECE a perfectly calibrated detector with the same scores would show "
                   f"here (mean and 95%% range; seeded by --seed; default {DECE_REFERENCE_DRAWS}; 0 = none)")
    p.set_defaults(func=_evaluate, imports=("multirater.evaluation.evaluate",))

    p = subparsers.add_parser("learned-bias",
                              help="synthetic data: the selected models' scores on objects one rater labelled "
                              "(did the rater-specific models learn their rater's bias?)")
    p.add_argument("--objects", required=True, help="the synthetic dataset's test_objects.csv")
    p.add_argument("--selection", required=True, help="selection.csv (only the selected models count)")
    p.add_argument("--predictions", nargs="+", required=True,
                   help="test detections files of the models (identity in meta.identity); others are skipped")
    p.add_argument("--out", required=True, help="learned_bias.csv to write (one row)")
    p.set_defaults(func=_learned_bias)

    p = subparsers.add_parser("compare", help="paired bootstrap comparison of two metrics files (A - B)")
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument("--out", default=None, help="CSV to write (default: print only)")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("tables",
                              help="metrics.csv, Table 1, significance, LSE vs RSE and per-label-set tables")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--models", nargs="*", default=[], help="single models' metrics files (identity: strategy, config_id)")
    p.add_argument("--ensembles", nargs="*", default=[], help="ensembles' metrics files (identity: kind, size, members)")
    p.add_argument("--label-sets", nargs="*", default=[],
                   help="metrics files of models and ensembles on the other test label sets (label_sets.csv)")
    p.add_argument("--members", nargs="*", default=[],
                   help="member bootstrap files, one per ensemble size (two-level intervals of lse_vs_rse.csv)")
    p.add_argument("--pool", default=None, help="pool file naming the selected models' replicates")
    p.add_argument("--replicates", nargs="*", default=[],
                   help="metrics files of the selected models' replicates (two-level intervals of significance.csv)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_tables)

    p = subparsers.add_parser("member-bootstrap",
                              help="two-level bootstrap of LSE_S and RSE_S: resample the test images and the members")
    p.add_argument("--gt", required=True, help="COCO ground truth (its images are the evaluated images)")
    p.add_argument("--pool", required=True, help="pool file (multirater pool): the models members are drawn from")
    p.add_argument("--size", required=True, type=int, help="ensemble size S")
    p.add_argument("--out", required=True, help="member bootstrap file (JSON) to write")
    _evaluation_flags(p)
    p.add_argument("--soft-gt", nargs="+", default=[], metavar="LABELS.json",
                   help="D-ECE-soft's label sets, as evaluate's --soft-gt (two-level values of D-ECE-soft too)")
    p.add_argument("--member-draws", type=int, default=10,
                   help="member sets drawn per ensemble; resample b fuses LSE draw b mod M and RSE draw "
                   "(b div M) mod M (default 10; 0 = off)")
    p.add_argument("--fusion-iou", type=float, default=0.5, help="fusion's grouping IoU (default 0.5)")
    p.add_argument("--score-norm", choices=("ensemble", "group"), default="ensemble", help="fusion's score_norm")
    p.add_argument("--merge", choices=("mean", "max-score"), default="mean", help="fusion's merge")
    p.set_defaults(func=_member_bootstrap)


def _evaluation_flags(p: argparse.ArgumentParser) -> None:
    """The evaluation settings' flags, shared by ``evaluate`` and ``member-bootstrap``."""
    p.add_argument("--iou", type=float, nargs="+", default=[0.5, 0.75],
                   help="IoU thresholds of D-ECE (default 0.5 0.75)")
    p.add_argument("--bins", type=int, default=10, help="confidence bins of D-ECE (default 10)")
    p.add_argument("--matching", choices=MATCHINGS, default="greedy",
                   help="matching for D-ECE and reliability: greedy = COCO's rule (default), "
                   "hungarian = max total IoU")
    p.add_argument("--max-dets", type=int, default=100,
                   help="detections per image and category for mAP/mAR (default 100)")
    p.add_argument("--bootstrap", type=int, default=100,
                   help="bootstrap resamples of the test images (default 100; 0 = none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the resamples (default 0; same seed = paired resamples)")
    p.add_argument("--dece-features", nargs="*", default=[], choices=DECE_FEATURES,
                   help="multivariate D-ECE: also bin by relative box centre/size")


def evaluation_settings(args: argparse.Namespace) -> dict:
    """The evaluation settings given by ``multirater evaluate``'s flags."""
    return {"iou_thresholds": tuple(args.iou), "bins": args.bins, "matching": args.matching,
            "max_dets": args.max_dets, "bootstrap": args.bootstrap, "dece_features": tuple(args.dece_features),
            "dece_reference_draws": getattr(args, "dece_reference_draws", 0)}


def check_evaluate_flags(args: argparse.Namespace) -> None:
    """Raise a UserError naming the first flag of ``multirater evaluate`` whose value is out of range."""
    found = settings_problem(**evaluation_settings(args))
    if found:
        raise UserError(f"{FLAGS[found[0]]} {found[1]}")


def _evaluate(args: argparse.Namespace) -> int:
    from multirater.core.files import read_json, write_json
    from multirater.evaluation.evaluate import evaluate
    from multirater.io.detections import read_detections

    check_evaluate_flags(args)
    gt = read_json(args.gt)
    soft_gt = [read_json(path) for path in args.soft_gt]
    detections = read_detections(args.pred)
    result = evaluate(gt, detections, seed=args.seed, gt_name=args.gt, pred_name=args.pred, soft_gt=soft_gt,
                      soft_gt_names=args.soft_gt, **evaluation_settings(args))
    result["settings"]["label_set"] = args.label_set
    write_json(args.out, result)
    summary = ", ".join(
        f"{r['metric']}{'' if r['iou'] is None else '@' + format(r['iou'], 'g')}={r['value']:.4f}"
        for r in result["metrics"]
    )
    print(f"{args.pred}: {summary}")
    return 0


def _learned_bias(args: argparse.Namespace) -> int:
    from multirater.evaluation.learned_bias import write_learned_bias

    row = write_learned_bias(args.objects, args.selection, args.predictions, args.out)
    print(f"wrote {args.out}: learned-bias AUC {row['learned_bias_auc']:.3f}, LS models' mean score on one-rater "
          f"objects {row['ls_score_one_rater']:.3f}")
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
    from multirater.evaluation.table_files import write_tables

    for path in write_tables(args.selection, args.models, args.ensembles, args.out_dir, args.label_sets,
                             args.members, args.pool, args.replicates):
        print(f"wrote {path}")
    return 0


def _member_bootstrap(args: argparse.Namespace) -> int:
    from multirater.core.files import read_json, write_json
    from multirater.evaluation.member_bootstrap import member_bootstrap
    from multirater.io.detections import read_detections
    from multirater.selection.members import check_member_detections
    from multirater.selection.pool import read_pool

    check_evaluate_flags(args)
    if args.member_draws < 0 or args.member_draws == 1:
        raise UserError(f"must be 0 (off) or at least 2, got {args.member_draws}", None, "--member-draws")
    if not 0.0 < args.fusion_iou <= 1.0:
        raise UserError(f"must lie in (0, 1], got {args.fusion_iou}", None, "--fusion-iou")
    gt = read_json(args.gt)
    pool = read_pool(args.pool)
    cache: dict = {}

    def load(path: str, strategy: str, model_id: str):
        if path not in cache:
            detections = read_detections(path)
            check_member_detections({"strategy": strategy, "config_id": model_id}, detections.meta, path)
            cache[path] = detections
        return cache[path]

    settings = evaluation_settings(args)
    settings.pop("dece_reference_draws")
    result = member_bootstrap(gt, pool, args.size, load, seed=args.seed, member_draws=args.member_draws,
                              fusion_iou=args.fusion_iou, score_norm=args.score_norm, merge=args.merge,
                              gt_name=args.gt, pool_name=args.pool, soft_gt=[read_json(p) for p in args.soft_gt],
                              soft_gt_names=args.soft_gt, **settings)
    for record in result["ensembles"]:
        if record["warning"]:
            print(f"warning: {record['warning']}", file=sys.stderr)
    write_json(args.out, result)
    sets = ", ".join(f"{r['kind'].upper()}_{args.size}: {r['fused_sets']} member sets fused"
                     if r["varies"] else f"{r['kind'].upper()}_{args.size}: members fixed" for r in result["ensembles"])
    print(f"wrote {args.out} ({sets})")
    return 0
