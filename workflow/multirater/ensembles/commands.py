"""Commands of the ensembles stage (workflow/rules/ensembles.smk): members (who is in LSE_S or RSE_S),
fuse (one ensemble's detections)."""

from __future__ import annotations

import argparse
from typing import Any

from multirater.core.strategies import ENSEMBLE_KINDS  # names only: --help stays fast


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("members", help="the members of one ensemble (LSE_S or RSE_S)")
    p.add_argument("--selection", required=True, help="selection.csv")
    p.add_argument("--kind", required=True, choices=list(ENSEMBLE_KINDS))
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--predictions", required=True,
                   help="folder of the members' detections, <strategy>/<config_id>.json inside")
    p.add_argument("--out", required=True,
                   help="members file (JSON) to write: kind, size, and per member its detections file, "
                   "strategy, config_id and source")
    p.set_defaults(func=_members)

    p = subparsers.add_parser("fuse", help="fuse several models' detections into one ensemble")
    p.add_argument("preds", nargs="*", metavar="PRED.json",
                   help="detections files, one per model (or give --members)")
    p.add_argument("--members", default=None, metavar="MEMBERS.json",
                   help="members file written by `multirater members`: fuses its members' detections and "
                   "records the ensemble's identity (kind, size, members) in the output's meta.identity")
    p.add_argument("--out", required=True, help="fused detections file to write")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold of complete-linkage grouping (default 0.5)")
    p.add_argument("--sources", nargs="+", default=None, metavar="NAME",
                   help="one source name per file (e.g. its rater): fused boxes count votes per source "
                   "(with --members: taken from the members file)")
    p.add_argument("--score-norm", choices=("ensemble", "group"), default="ensemble",
                   help="divide summed scores by the ensemble size (default; absent models count 0) or the group size")
    p.add_argument("--merge", choices=("mean", "max-score"), default="mean",
                   help="fused box = mean of the members (default) or the most confident member's box and score")
    p.set_defaults(func=_fuse)


def _members(args: argparse.Namespace) -> int:
    from multirater.selection.members import build_members, write_members
    from multirater.selection.ranking import read_selection

    document = build_members(read_selection(args.selection), args.kind, args.size, args.predictions)
    write_members(args.out, document)
    print(f"wrote {args.out}: {args.kind.upper()}_{args.size} = {len(document['members'])} models")
    return 0


def _fuse_inputs(args: argparse.Namespace) -> tuple[list[str], list[str] | None, dict[str, Any] | None]:
    """(detections files, sources, identity) from --members or from the positional files and --sources."""
    from multirater.core.errors import UserError
    from multirater.selection.members import ensemble_identity, read_members

    if args.members is None:
        if not args.preds:
            raise UserError("give the detections files to fuse, or --members", None, "PRED.json")
        return list(args.preds), args.sources, None
    if args.preds or args.sources:
        raise UserError("takes its files and sources from the members file; give no PRED.json or --sources",
                        None, "--members")
    document = read_members(args.members)
    members = document["members"]
    return [m["detections"] for m in members], [m["source"] for m in members], ensemble_identity(document)


def _check_fuse_flags(iou: float, sources: list[str] | None, n_files: int) -> None:
    """The flag-level checks, before any file is read (the library names the setting, this the flag)."""
    from multirater.core.errors import UserError

    if not 0.0 < iou <= 1.0:
        raise UserError(f"--iou must lie in (0, 1], got {iou}")
    if sources is not None and len(sources) != n_files:
        raise UserError(f"--sources gives {len(sources)} names for {n_files} detections files (one per file)")


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse rather than hand it back to the system at once.

    Fusion allocates and frees thousands of numpy temporaries of a few megabytes; by default each one is a fresh
    mapping whose pages fault in anew, which costs a sixth of the command's CPU time. Freed memory is still
    reused, so the peak stays the same. Elsewhere than glibc there is no mallopt, and nothing to do.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no C library to load, or not glibc
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest: only larger blocks get their own mapping
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 64 << 20)


def _fuse(args: argparse.Namespace) -> int:
    from multirater.core.fusion import fuse
    from multirater.io.detections import read_detections, write_detections
    from multirater.selection.members import check_member_detections

    paths, sources, identity = _fuse_inputs(args)
    _check_fuse_flags(args.iou, sources, len(paths))
    _keep_freed_memory()
    models = [read_detections(path) for path in paths]
    if identity is not None:
        for model, path, member in zip(models, paths, identity["members"]):
            check_member_detections(member, model.meta, path)
    fused = fuse(models, iou=args.iou, sources=sources, score_norm=args.score_norm, merge=args.merge)
    fused.meta["fusion"]["inputs"] = paths
    # a single model's identity, shared by chance (an ensemble of one), is not the ensemble's
    fused.meta.pop("identity", None)
    if identity is not None:
        fused.meta["identity"] = identity
    write_detections(args.out, fused)
    print(f"fused {len(paths)} files into {len(fused)} detections on {len(fused.image_ids)} images: {args.out}")
    return 0
