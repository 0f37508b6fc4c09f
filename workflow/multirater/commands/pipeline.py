"""Workflow commands: select, members, tables, figures.

Heavy libraries (pandas, matplotlib) are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("select", help="rank each strategy's models by validation mAP and select the best")
    p.add_argument("status", nargs="+", help="models' status.json files")
    p.add_argument("--out", required=True, help="selection.csv to write")
    p.add_argument("--top-ls", type=int, required=True, help="label-sampling models to select")
    p.add_argument("--top-rs", type=int, required=True, help="rater-specific models to select per rater")
    p.set_defaults(func=_select)

    p = subparsers.add_parser("members", help="the members of one ensemble (LSE_S or RSE_S)")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--kind", required=True, choices=["lse", "rse"])
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--predictions", required=True,
                   help="folder of the test detections, <strategy>/<config_id>.json inside")
    p.add_argument("--out", required=True, help="members.txt to write: one detections file per line")
    p.add_argument("--sources-out", required=True, help="sources.txt to write: the rater (or ls) of each member")
    p.set_defaults(func=_members)

    p = subparsers.add_parser("tables", help="metrics.csv, Table 1, significance and LSE vs RSE tables")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--models", nargs="*", default=[], help="single models' metrics: .../<strategy>/<config_id>.json")
    p.add_argument("--ensembles", nargs="*", default=[], help="ensembles' metrics: .../<lse|rse>/<size>.json")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_tables)

    p = subparsers.add_parser("figures", help="the paper's calibration figures (PNG and PDF)")
    figs = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    f = figs.add_parser("reliability", help="Figure 3: reliability diagrams, LSE vs RSE")
    f.add_argument("--lse", required=True, help="metrics of the LSE")
    f.add_argument("--rse", required=True, help="metrics of the RSE")
    f.add_argument("--size", type=int, default=None, help="ensemble size, shown in the titles")
    f.add_argument("--out", required=True, help="output stem (writes STEM.png and STEM.pdf)")
    f.set_defaults(func=_figure_reliability)
    f = figs.add_parser("ensemble-size", help="Figure 4: D-ECE and mAP vs ensemble size")
    f.add_argument("--metrics", required=True, help="tables/metrics.csv")
    f.add_argument("--out", required=True, help="output stem (writes STEM.png and STEM.pdf)")
    f.set_defaults(func=_figure_ensemble_size)


def _select(args: argparse.Namespace) -> int:
    from multirater.errors import UserError
    from multirater.selection import rank_models, read_status, write_selection

    for name in ("top_ls", "top_rs"):
        if getattr(args, name) < 1:
            raise UserError(f"must be >= 1, got {getattr(args, name)}", None, "--" + name.replace("_", "-"))
    rows = rank_models([read_status(p) for p in args.status], args.top_ls, args.top_rs)
    write_selection(args.out, rows)
    skipped = [f"{r['strategy']}/{r['config_id']} ({r['status']})" for r in rows if r["rank"] is None]
    print(f"wrote {args.out}: {sum(r['selected'] for r in rows)} selected of {len(rows)} models")
    if skipped:
        print("skipped (not ok): " + ", ".join(skipped))
    return 0


def _members(args: argparse.Namespace) -> int:
    from pathlib import Path

    from multirater.files import write_text
    from multirater.selection import ensemble_members, read_selection

    members = ensemble_members(read_selection(args.selection), args.kind, args.size)
    paths = [str(Path(args.predictions) / strategy / f"{cid}.json") for strategy, cid, _ in members]
    write_text(args.out, "\n".join(paths) + "\n")
    write_text(args.sources_out, "\n".join(source for _, _, source in members) + "\n")
    print(f"wrote {args.out}: {args.kind.upper()}_{args.size} = {len(members)} models")
    return 0


def _tables(args: argparse.Namespace) -> int:
    from multirater.tables import write_tables

    for path in write_tables(args.selection, args.models, args.ensembles, args.out_dir):
        print(f"wrote {path}")
    return 0


def _figure_reliability(args: argparse.Namespace) -> int:
    from multirater.plots.calibration import reliability_figure
    from multirater.plots.style import save_figure
    from multirater.tables import read_metrics

    fig = reliability_figure(read_metrics(args.lse), read_metrics(args.rse), args.size)
    for path in save_figure(fig, args.out):
        print(f"wrote {path}")
    return 0


def _figure_ensemble_size(args: argparse.Namespace) -> int:
    import pandas as pd

    from multirater.errors import UserError
    from multirater.plots.calibration import ensemble_size_figure
    from multirater.plots.style import save_figure

    try:
        table = pd.read_csv(args.metrics)
    except FileNotFoundError:
        raise UserError("file not found", args.metrics) from None
    needed = {"kind", "size", "metric", "iou", "value", "mean", "std"}
    if not needed <= set(table.columns):
        raise UserError(f"needs columns {sorted(needed)}, got {list(table.columns)}", args.metrics)
    for path in save_figure(ensemble_size_figure(table), args.out):
        print(f"wrote {path}")
    return 0
