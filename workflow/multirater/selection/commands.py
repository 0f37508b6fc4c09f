"""Commands of the selection stage (workflow/rules/selection.smk): select."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("select", help="rank each strategy's models by validation mAP and select the best")
    p.add_argument("status", nargs="+", help="models' status.json files")
    p.add_argument("--out", required=True, help="selection.csv to write")
    p.add_argument("--top-ls", type=int, required=True, help="label-sampling models to select")
    p.add_argument("--top-rs", type=int, required=True, help="rater-specific models to select per rater")
    p.set_defaults(func=_select)



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
