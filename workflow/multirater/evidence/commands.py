"""Commands of the evidence run (workflow/rules/evidence.smk): ``evidence cell`` runs the whole workflow for
one cell (rater preset, bias, data seed; an arm's settings), ``evidence summarize`` compares LSE and RSE over
the cells.

pandas and matplotlib are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evidence cell`` and ``evidence summarize``."""
    p = subparsers.add_parser("evidence", help="the evidence run: LSE vs RSE over rater presets and data seeds")
    steps = p.add_subparsers(dest="step", metavar="STEP", required=True)
    s = steps.add_parser("cell", help="run the whole workflow on one cell's config, in the config's folder")
    s.add_argument("--config", required=True, help="the cell's workflow config (its folder gets results/, run.json)")
    s.add_argument("--cores", type=_positive_int, default=2, help="cores of the cell's workflow (default 2)")
    s.add_argument("--snakefile", default=None, help="the workflow (default: this repository's Snakefile)")
    s.add_argument("--profile", default=None, help="Snakemake profile (default: this repository's profiles/local)")
    s.set_defaults(func=_cell)
    s = steps.add_parser("summarize", help="summary.csv, cells.csv, directions.csv, ranges.csv, runs.csv, "
                         "calibration.csv and the figures (fig_evidence, fig_learned_bias, fig_<arm>) of "
                         "finished cells")
    s.add_argument("--cells", nargs="+", required=True, help="the cells' folders (each with config.yaml, results/)")
    s.add_argument("--out", required=True, help="folder to write into")
    s.set_defaults(func=_summarize)


def _cell(args: argparse.Namespace) -> int:
    from multirater.evidence.runner import run_cell

    seconds = run_cell(args.config, args.cores, args.snakefile, args.profile)
    print(f"cell {args.config}: done in {seconds / 60:.1f} min on {args.cores} core(s)")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from multirater.core.files import read_json
    from multirater.core.plot_style import save_figure
    from multirater.evidence.arm_figure import arm_figure, learned_bias_figure
    from multirater.evidence.design import RUN_RECORD
    from multirater.evidence.figure import evidence_figure
    from multirater.evidence.summary import write_summary

    tables = write_summary(args.cells, args.out)
    summary, cells = pd.read_csv(tables[0]), pd.read_csv(tables[1])
    out = Path(args.out)
    figures = {"fig_evidence": evidence_figure(summary), "fig_learned_bias": learned_bias_figure(cells)}
    for arm in sorted({a for a in cells["arm"] if isinstance(a, str) and a}):
        figures[f"fig_{arm}"] = arm_figure(summary, cells, arm)
    paths = [*tables, *(p for stem, fig in figures.items() for p in save_figure(fig, out / stem))]
    for path in paths:
        print(f"wrote {path}")
    runs = [Path(c) / RUN_RECORD for c in args.cells]
    seconds = [read_json(r)["seconds"] for r in runs if r.is_file()]
    if seconds:  # timing is printed (and in runs.csv), never in the result tables: they stay the same every run
        print(f"{len(seconds)} cell(s) took {sum(seconds) / 60:.1f} min in all "
              f"({min(seconds) / 60:.1f}-{max(seconds) / 60:.1f} min each)")
    return 0
