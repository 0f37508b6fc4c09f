"""Commands of the ensembles stage (workflow/rules/ensembles.smk): members (who is in LSE_S or RSE_S),
fuse (one ensemble's detections)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("members", help="the members of one ensemble (LSE_S or RSE_S)")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--kind", required=True, choices=["lse", "rse"])
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--predictions", required=True,
                   help="folder of the test detections, <strategy>/<config_id>.json inside")
    p.add_argument("--out", required=True, help="members.txt to write: one detections file per line")
    p.add_argument("--sources-out", required=True, help="sources.txt to write: the rater (or ls) of each member")
    p.set_defaults(func=_members)

    p = subparsers.add_parser("fuse", help="fuse several models' detections into one ensemble")
    p.add_argument("preds", nargs="+", metavar="PRED.json", help="detections files, one per model")
    p.add_argument("--out", required=True, help="fused detections file to write")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold of complete-linkage grouping (default 0.5)")
    p.add_argument("--sources", nargs="+", default=None, metavar="NAME",
                   help="one source name per file (e.g. its rater): fused boxes count votes per source")
    p.add_argument("--score-norm", choices=("ensemble", "group"), default="ensemble",
                   help="divide summed scores by the ensemble size (default; absent models count 0) or the group size")
    p.add_argument("--merge", choices=("mean", "max-score"), default="mean",
                   help="fused box = mean of the members (default) or the most confident member's box and score")
    p.set_defaults(func=_fuse)


def _members(args: argparse.Namespace) -> int:
    from pathlib import Path

    from multirater.core.files import write_text
    from multirater.selection.ranking import ensemble_members, read_selection

    members = ensemble_members(read_selection(args.selection), args.kind, args.size)
    paths = [str(Path(args.predictions) / strategy / f"{cid}.json") for strategy, cid, _ in members]
    write_text(args.out, "\n".join(paths) + "\n")
    write_text(args.sources_out, "\n".join(source for _, _, source in members) + "\n")
    print(f"wrote {args.out}: {args.kind.upper()}_{args.size} = {len(members)} models")
    return 0


def _fuse(args: argparse.Namespace) -> int:
    from multirater.io.detections import read_detections, write_detections
    from multirater.ensembles.fusion import fuse

    models = [read_detections(path) for path in args.preds]
    fused = fuse(models, iou=args.iou, sources=args.sources, score_norm=args.score_norm, merge=args.merge)
    fused.meta["fusion"]["inputs"] = list(args.preds)
    write_detections(args.out, fused)
    print(f"fused {len(args.preds)} files into {len(fused)} detections on {len(fused.image_ids)} images: {args.out}")
    return 0
