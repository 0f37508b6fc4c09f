"""Commands of the selection stage (workflow/rules/selection.smk): select, pool."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("select", help="rank each strategy's models by validation mAP and select the best")
    p.add_argument("status", nargs="+", help="models' status.json files")
    p.add_argument("--out", required=True, help="selection.csv to write")
    p.add_argument("--top-ls", type=int, required=True, help="label-sampling models to select")
    p.add_argument("--top-rs", type=int, required=True, help="rater-specific models to select per rater")
    p.set_defaults(func=_select)

    p = subparsers.add_parser("pool", help="the selected models and their training replicates (the member "
                              "bootstrap's pool)")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--replicates", type=int, default=1,
                   help="training runs of each selected configuration (training.replicates; default 1)")
    p.add_argument("--predictions", required=True,
                   help="folder of the models' test detections, <strategy>/<model_id>.json inside")
    p.add_argument("--out", required=True, help="pool file (JSON) to write")
    p.set_defaults(func=_pool)


def _select(args: argparse.Namespace) -> int:
    from multirater.core.errors import UserError
    from multirater.io.status import read_status
    from multirater.selection.ranking import rank_models, write_selection

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


def _pool(args: argparse.Namespace) -> int:
    from multirater.core.errors import UserError
    from multirater.selection.pool import build_pool, write_pool
    from multirater.selection.ranking import read_selection

    if args.replicates < 1:
        raise UserError(f"must be >= 1, got {args.replicates}", None, "--replicates")
    document = build_pool(read_selection(args.selection), args.replicates, args.predictions)
    write_pool(args.out, document)
    print(f"wrote {args.out}: {len(document['models'])} selected models x {args.replicates} training run(s)")
    return 0
