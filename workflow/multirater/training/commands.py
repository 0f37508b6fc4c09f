"""CLI: ``sweep``, ``pretrain``, ``train``, ``predict`` (torch is imported inside the handlers)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from multirater.core.errors import UserError
from multirater.core.strategies import LS, RS, UNION, strategy_rater

if TYPE_CHECKING:
    from pathlib import Path

    from multirater.training.labels import Strategy

SPLIT_NAMES = ("train", "val", "test")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be auto or a number >= 0, got {value}")
    return value


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the GPU when there is one (mixed precision), else the CPU")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (fix it for bitwise-reproducible CPU runs)")


def register(subparsers: Any) -> None:
    """Add ``sweep``, ``pretrain``, ``train`` and ``predict`` to the ``multirater`` command line."""
    p = subparsers.add_parser("sweep", help="expand the hyperparameter space into configs.tsv (+ one config file per id)")
    p.add_argument("--config", required=True, help="workflow config YAML (sections model, training, pretrain, sweep)")
    p.add_argument("--out", required=True, help="configs.tsv to write")
    p.add_argument("--config-dir", default=None,
                   help="also write DIR/<config_id>.yaml per configuration and DIR/pretrain.yaml")
    p.set_defaults(func=_sweep)

    pretrain_help = ("train the base detector on a base dataset of its own, never the experiment's (each image's "
                     "target: every rater's boxes together)")
    for name, helptext in (("pretrain", pretrain_help),
                           ("train", "train one detector (strategy x configuration) into a model folder")):
        p = subparsers.add_parser(name, help=helptext)
        base = name == "pretrain"
        p.add_argument("--dataset", required=True,
                       help="the base dataset's dataset.yaml (dataset.base_manifest or the generated one)" if base
                       else "dataset.yaml")
        p.add_argument("--splits", required=True,
                       help="the base dataset's own train/validation split (base_split)" if base else "splits.json")
        if name == "train":
            p.add_argument("--strategy", required=True, help="ls, rs-<rater> or rs:<rater>")
            p.add_argument("--base", default=None, help="base checkpoint (overrides model.base_checkpoint)")
        p.add_argument("--config", required=True, help="training configuration YAML ({model, training, config_id})")
        p.add_argument("--out", required=True, help="model folder (status.json, best.pt, last.pt, metrics.csv)")
        _add_device(p)
        p.add_argument("--loader-workers", type=_workers, default="auto",
                       help="processes preparing the training batches (0: this process); auto: from --threads "
                            "(on a GPU all but one, on the CPU one when there are two or more)")
        p.set_defaults(func=_train, pretrain=name == "pretrain", imports=("torch", "multirater.training.loop"))

    p = subparsers.add_parser("predict", help="run a trained model on val, test or a folder of images")
    p.add_argument("--model", required=True, help="model folder written by train/pretrain")
    p.add_argument("--dataset", default=None, help="dataset.yaml (needed for val/test)")
    p.add_argument("--splits", default=None, help="splits.json (needed for val/test)")
    p.add_argument("--images", required=True, nargs="+",
                   help="val, test, or a folder of images; several (e.g. val test) share one model load")
    p.add_argument("--out", required=True, nargs="+", help="detections JSON to write, one per --images")
    p.add_argument("--batch-size", type=_positive_int, default=4)
    _add_device(p)
    p.set_defaults(func=_predict, imports=("torch", "multirater.training.prediction"))


def _sweep(args: argparse.Namespace) -> int:
    from multirater.training.sweep import write_sweep

    entries = write_sweep(args.config, args.out, args.config_dir)
    print(f"{len(entries)} configuration(s) -> {args.out}")
    return 0


def parse_strategy(token: str, rater_names: list[str]) -> "Strategy":
    """The --strategy value: ``ls``, ``union``, ``rs-<rater>`` or ``rs:<rater>``, for a rater of the dataset."""
    from multirater.training.labels import Strategy

    rater = strategy_rater(token)
    if rater is not None:
        if rater not in rater_names:
            raise UserError(f"unknown rater {rater!r}; the dataset's raters are {rater_names}", None, "--strategy")
        return Strategy(RS, rater)
    if token in (LS, UNION):
        return Strategy(token)
    raise UserError(f"must be 'ls' or 'rs-<rater>' (raters: {rater_names}), got {token!r}", None, "--strategy")


def _setup(args: argparse.Namespace) -> Any:
    """Torch's CPU threads, and the --device to run on."""
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is available", None, "--device")
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(args.device)


def _train(args: argparse.Namespace) -> int:
    from multirater.data.dataset import load_dataset
    from multirater.training.inputs import read_splits
    from multirater.training.loop import run_training
    from multirater.training.settings import read_training_config

    config = read_training_config(args.config)
    dataset = load_dataset(args.dataset)
    splits = read_splits(args.splits, dataset)
    strategy = parse_strategy(UNION if args.pretrain else args.strategy, dataset.rater_names)
    device = _setup(args)
    workers = args.loader_workers
    if workers == "auto":
        from multirater.training.samples import default_loader_workers

        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = default_loader_workers(args.threads or cpus, device)
    return run_training(dataset, splits, strategy, config, args.out, device, getattr(args, "base", None),
                        loader_workers=workers)


def _predict(args: argparse.Namespace) -> int:
    from multirater.data.dataset import load_dataset
    from multirater.training.inputs import read_splits
    from multirater.training.prediction import ImageSet, predict

    if len(args.out) != len(args.images) or len(set(args.out)) != len(args.out):
        raise UserError(f"needs one distinct file per --images ({len(args.images)}), got {len(args.out)}: "
                        f"{' '.join(args.out)}", None, "--out")
    dataset = load_dataset(args.dataset) if args.dataset else None
    splits = read_splits(args.splits, dataset) if (args.splits and dataset is not None) else None
    # every image set is resolved before the first prediction, so a bad one leaves no file behind
    image_sets = []
    for images, out in zip(args.images, args.out):
        image_ids, paths, meta = _prediction_images(images, dataset, splits)
        image_sets.append(ImageSet(image_ids, paths, out, meta))
    device = _setup(args)
    for image_set, dets in zip(image_sets, predict(args.model, image_sets, device, args.batch_size)):
        print(f"{len(dets)} detection(s) on {len(image_set.image_ids)} image(s) -> {image_set.out}")
    return 0


def _prediction_images(images: str, dataset: Any, splits: dict[str, Any] | None
                       ) -> tuple[list[int], dict[int, Path], dict[str, Any]]:
    """One --images value: the image ids, their files and the detections file's meta."""
    from multirater.training.prediction import folder_images, split_images, usable_images

    meta: dict[str, Any] = {"images": images}
    if images in SPLIT_NAMES:
        if dataset is None or splits is None:
            raise UserError(f"--images {images} needs --dataset and --splits", None, "--images")
        image_ids, paths = split_images(images, dataset, splits)
        return image_ids, paths, meta
    try:
        image_ids, paths = folder_images(images, dataset)
    except UserError as exc:  # name the option too: it may be a misspelt split
        raise UserError(f"must be {', '.join(SPLIT_NAMES)} or a folder of images: {exc.problem}", exc.file,
                        "--images") from None
    image_ids, skipped = usable_images(image_ids, paths)
    for name, problem in skipped.items():
        print(f"skipped {name}: {problem}; it gets no detections and no count")
    if not image_ids:
        raise UserError(f"every image is too small for the detectors ({len(skipped)} skipped)", images, "--images")
    meta["file_names"] = {str(i): paths[i].name for i in image_ids}  # say which file each id is
    if skipped:
        meta["skipped_images"] = skipped
    return image_ids, paths, meta
