"""Commands of the report stage (workflow/rules/report.smk): ``run-record`` writes ``run.json`` (where the run
and each training ran), ``findings`` the front page's text (what the run found, and where it ran), ``timings``
what each rule of a run cost, from its benchmark files.

pandas, tabulate and torch are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run-record``, ``findings`` and ``timings``."""
    p = subparsers.add_parser("run-record", help="run.json: the commit, versions, and where each training ran")
    p.add_argument("status", nargs="*", help="the models' status.json files (each records its training's machine)")
    p.add_argument("--out", required=True, help="run.json to write")
    p.add_argument("--repository", default=None, help="the workflow's checkout (default: this package's)")
    p.set_defaults(func=_run_record, imports=("torch", "torchvision"))  # the workflow machine's torch
    p = subparsers.add_parser("findings", help="the report front page's text: what the run found, where it ran")
    p.add_argument("--comparison", required=True, help="tables/lse_vs_rse.csv")
    p.add_argument("--metrics", required=True, help="tables/metrics.csv")
    p.add_argument("--selection", required=True, help="selection/selection.csv")
    p.add_argument("--calibration", default=None, help="tables/calibration.csv (absent: calibration is off)")
    p.add_argument("--headline", nargs=2, default=("rse", "logistic-soft"), metavar=("APPROACH", "VARIANT"),
                   help="the calibration headline: approach and <method>-<target> (default rse logistic-soft)")
    p.add_argument("--run", required=True, help="run.json (multirater run-record)")
    p.add_argument("--out", required=True, help="reStructuredText file to write")
    p.set_defaults(func=_findings)
    p = subparsers.add_parser("timings", help="per rule: jobs, total/mean/max seconds, CPU seconds and peak memory "
                                              "of a run, from its benchmark files")
    p.add_argument("--results", default="results",
                   help="the run's results folder (reads RESULTS/benchmarks; default: results)")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.set_defaults(func=_timings)


def job_name(status: dict) -> str:
    """A training's name in run.json: ``pretrain`` or ``<strategy>/<config_id>``."""
    return "pretrain" if status["config_id"] == "pretrain" else f"{status['strategy']}/{status['config_id']}"


def _run_record(args: argparse.Namespace) -> int:
    from multirater.core.provenance import REPOSITORY, run_record
    from multirater.io.run_file import write_run
    from multirater.io.status import read_status

    statuses = [read_status(p) for p in args.status]
    record = run_record({job_name(s): s.get("environment") for s in statuses}, args.repository or REPOSITORY)
    write_run(args.out, record)
    print(f"wrote {args.out}: {len(statuses)} training(s) in {len(record['trainings'])} environment(s)"
          + (" (mixed)" if record["mixed"] else ""))
    return 0


def _findings(args: argparse.Namespace) -> int:
    from multirater.core.files import write_text
    from multirater.io.run_file import read_run
    from multirater.report.about import about_text
    from multirater.report.findings import findings_text

    text = findings_text(args.comparison, args.metrics, args.selection, args.calibration, tuple(args.headline))
    write_text(args.out, text + "\n" + about_text(read_run(args.run)))
    print(f"wrote {args.out}")
    return 0


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
