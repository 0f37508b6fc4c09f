"""Commands of the agreement stage (workflow/rules/agreement.smk): agreement.

pandas and matplotlib are imported inside the handler so the CLI starts fast.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("agreement", help="inter-rater counts, F1 vs IoU and Figures 1-2")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image", type=int, default=None, help="image id shown in Figure 1 (default: the first multi-rater image)")
    p.set_defaults(func=_agreement)


def _agreement(args: argparse.Namespace) -> int:
    from multirater.agreement.statistics import write_agreement
    from multirater.data.dataset import load_dataset

    written = write_agreement(load_dataset(args.dataset), args.out, figure_image=args.image)
    for path in written:
        print(f"wrote {path}")
    return 0
