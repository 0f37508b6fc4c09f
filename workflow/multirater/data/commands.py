"""Commands of the data stage (workflow/rules/data.smk): synth, check, split, import.

Heavy libraries (pandas, matplotlib) are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse

from multirater.data.importers import FORMATS as IMPORT_FORMATS  # a light module: --help stays fast


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="write a synthetic multi-rater organoid dataset")
    p.add_argument("--out", required=True, help="output folder (gets dataset.yaml, images/, rater*.json, consensus.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--images", type=int, default=80, help="multi-rater images (default 80)")
    p.add_argument("--consensus-images", type=int, default=20, help="consensus (test) images (default 20)")
    p.add_argument("--raters", type=int, default=2, help="number of raters (default 2)")
    p.add_argument("--size", type=int, default=256, help="image width and height in px (default 256)")
    p.set_defaults(func=_synth)

    p = subparsers.add_parser("check", help="validate a dataset manifest and report every problem")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.set_defaults(func=_check)

    p = subparsers.add_parser("split", help="train/validation/test split, stratified by object count")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.add_argument("--out", required=True, help="splits.json to write")
    p.add_argument("--val-fraction", type=float, default=0.1875, help="share of multi-rater images for validation (default 0.1875 = 15/80)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.set_defaults(func=_split)


    register_import(subparsers)


def _synth(args: argparse.Namespace) -> int:
    from multirater.data.synthetic import generate

    manifest = generate(args.out, seed=args.seed, images=args.images, consensus_images=args.consensus_images,
                        raters=args.raters, size=args.size)
    print(f"wrote {manifest}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from multirater.data.dataset import check_images, load_dataset
    from multirater.core.errors import UserErrors

    dataset = load_dataset(args.dataset)
    problems = check_images(dataset)
    if problems:
        raise UserErrors(problems.errors) if len(problems.errors) > 1 else problems.errors[0]
    n_ann = {s: len(dataset.coco(s)["annotations"]) for s in dataset.sources}
    print(
        f"{args.dataset}: ok: {len(dataset.rater_image_ids)} multi-rater images, "
        f"{len(dataset.consensus_image_ids)} consensus images, "
        + ", ".join(f"{s} {n} boxes" for s, n in n_ann.items())
    )
    return 0


def _split(args: argparse.Namespace) -> int:
    from multirater.data.dataset import load_dataset, make_splits
    from multirater.core.files import write_json

    splits = make_splits(load_dataset(args.dataset), val_fraction=args.val_fraction, seed=args.seed)
    write_json(args.out, splits, indent=None)
    print(f"wrote {args.out}: {len(splits['train'])} train, {len(splits['val'])} val, {len(splits['test'])} test")
    return 0


def register_import(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="convert multiorg / napari-organoid-counter / csv annotations into a dataset")
    p.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    p.add_argument("--images", required=True, help="folder of the images (PNG, TIFF, JPEG)")
    p.add_argument("--labels", required=True, help="annotations of the multi-rater images (see README for the layout of each format)")
    p.add_argument("--consensus-labels", default=None, help="annotations of the consensus (test) images, same format")
    p.add_argument("--out", required=True, help="new dataset folder (gets dataset.yaml and one COCO file per rater)")
    p.add_argument("--name", default=None, help="dataset name (default: the --out folder's name)")
    p.add_argument("--axes", choices=("rc", "xy"), default="rc",
                   help="napari-organoid-counter only: rc (default) reads x1/x2 as rows, as napari stores them; xy as columns")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from multirater.data.importers import import_dataset

    manifest = import_dataset(args.format, args.images, args.labels, args.out, args.consensus_labels, args.name, args.axes)
    print(f"wrote {manifest}")
    return 0
