"""Commands of the report stage (workflow/rules/report.smk): timings.

tabulate and pandas are imported inside the handler so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("timings", help="per rule: jobs, total/mean/max seconds, CPU seconds and peak memory "
                                              "of a run, from its benchmark files")
    p.add_argument("--results", default="results",
                   help="the run's results folder (reads RESULTS/benchmarks; default: results)")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.set_defaults(func=_timings)


def _timings(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from multirater.report.timings import COLUMNS, format_timings, rule_timings

    rows = rule_timings(Path(args.results) / "benchmarks")
    sys.stdout.write(format_timings(rows))
    if args.out:
        import pandas as pd

        from multirater.core.files import write_csv

        write_csv(args.out, pd.DataFrame(rows, columns=list(COLUMNS)))
        print(f"wrote {args.out}")
    return 0
