"""Commands of the figures stage (workflow/rules/figures.smk): the paper's calibration figures.

pandas and matplotlib are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse

# imported by multirater.cli.import_frozen before a figure command runs (its objects then frozen)
FIGURE_IMPORTS = ("matplotlib.pyplot", "pandas", "multirater.figures.calibration")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("figures", help="the paper's calibration figures (PNG and PDF)")
    figs = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    f = figs.add_parser("reliability", help="Figure 3: reliability diagrams, LSE vs RSE")
    f.add_argument("--lse", required=True, help="metrics of the LSE")
    f.add_argument("--rse", required=True, help="metrics of the RSE")
    f.add_argument("--size", type=int, default=None, help="ensemble size, shown in the titles")
    f.add_argument("--out", required=True, help="output stem (writes STEM.png and STEM.pdf)")
    f.set_defaults(func=_figure_reliability, imports=FIGURE_IMPORTS)
    f = figs.add_parser("ensemble-size", help="Figure 4: D-ECE and mAP vs ensemble size")
    f.add_argument("--metrics", required=True, help="tables/metrics.csv")
    f.add_argument("--out", required=True, help="output stem (writes STEM.png and STEM.pdf)")
    f.set_defaults(func=_figure_ensemble_size, imports=FIGURE_IMPORTS)


def _figure_reliability(args: argparse.Namespace) -> int:
    from multirater.figures.calibration import reliability_figure
    from multirater.core.plot_style import save_figure
    from multirater.evaluation.tables import read_metrics

    fig = reliability_figure(read_metrics(args.lse), read_metrics(args.rse), args.size)
    for path in save_figure(fig, args.out):
        print(f"wrote {path}")
    return 0


def _figure_ensemble_size(args: argparse.Namespace) -> int:
    import pandas as pd

    from multirater.core.errors import UserError
    from multirater.figures.calibration import ensemble_size_figure
    from multirater.core.plot_style import save_figure

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
