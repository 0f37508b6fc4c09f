"""Everything one training run works with: settings, data, model, optimizer, lr schedule.

:func:`prepare_job` builds it in a fixed order (seed, build, base weights or resume, freeze,
optimizer), so the same configuration always starts from the same weights.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from multirater.core.errors import UserError
from multirater.core.strategies import RS
from multirater.data.dataset import Dataset
from multirater.training.augment import Augment
from multirater.training.checkpoints import file_digest, resumable_checkpoint, run_fingerprint
from multirater.training.coverage import RaterCoverage
from multirater.training.data import LabelMap, Targets, dataset_has_masks
from multirater.training.image_store import TrainingImages
from multirater.training.labels import Strategy
from multirater.training.models import apply_freeze, build_model, is_mask_model, load_weights
from multirater.training.samples import Batch, EpochBatches, TrainingSamples, as_lists, make_loader, to_device
from multirater.training.schedule import LearningRate

STALE_OUTPUTS = ("best.pt", "last.pt", "metrics.csv")


@dataclass
class TrainingJob:
    """One (strategy, configuration) run; the loop changes only the model's and optimizer's state."""

    dataset: Dataset
    coverage: RaterCoverage  # who labelled which image
    strategy: Strategy
    config_id: str
    model_settings: dict[str, Any]
    settings: dict[str, Any]  # the training settings
    train_ids: list[int]  # the strategy's: a rater-specific model's are its rater's images only
    val_ids: list[int]
    out_dir: Path
    device: torch.device
    amp: bool  # mixed precision: on CUDA only
    fingerprint: str  # of everything that defines the run; last.pt is resumed only if it matches
    label_map: LabelMap
    masks: bool
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: LearningRate
    images: TrainingImages
    targets: Targets
    samples: TrainingSamples  # (epoch, image id) -> the image or its crop, its target, augmented
    batches: EpochBatches  # the current epoch's batches of sample keys
    loader: torch.utils.data.DataLoader  # reads ``samples`` in ``loader_workers`` processes
    loader_workers: int

    @property
    def raters(self) -> list[str]:
        """The dataset's raters, in its order."""
        return list(self.dataset.rater_names)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (the last batch may be smaller)."""
        return math.ceil(len(self.train_ids) / self.settings["batch_size"])

    @property
    def meta(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild the model and say where it came from."""
        return {
            "model_settings": self.model_settings, "num_classes": self.label_map.num_classes, "masks": self.masks,
            "category_ids": self.label_map.category_ids, "strategy": self.strategy.token,
            "config_id": self.config_id, "training": self.settings,
        }

    def batch(self, epoch: int, ids: list[int]) -> Batch:
        """The images (or their training crops) and this epoch's targets (the strategy's labels, augmented)
        of ``ids`` on the device: the batch the loader delivers for these ids, made in this process."""
        return to_device(as_lists([self.samples[(epoch, image_id)] for image_id in ids]), self.device)


def strategy_images(strategy: Strategy, coverage: RaterCoverage,
                    splits: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """The training and validation images of a strategy: a rater-specific model's are those of the
    split its rater labelled; label sampling and union use every image of the split."""
    train_ids, val_ids = list(splits["train"]), list(splits["val"])
    if strategy.kind != RS:
        return train_ids, val_ids
    mine = [[i for i in ids if coverage.labelled(strategy.rater, i)] for ids in (train_ids, val_ids)]
    for ids, split in zip(mine, ("train", "val")):
        if not ids:
            raise UserError(f"rater {strategy.rater!r} labelled none of the {split} images; "
                            f"a rater-specific model needs both", None, split)
    return mine[0], mine[1]


def make_optimizer(params: list[torch.nn.Parameter], settings: dict[str, Any]) -> torch.optim.Optimizer:
    """The configured optimizer over ``params``."""
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    if settings["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    return torch.optim.SGD(params, lr=settings["lr"], momentum=settings["momentum"],
                           weight_decay=settings["weight_decay"])


def prepare_job(
    dataset: Dataset,
    splits: dict[str, list[int]],
    strategy: Strategy,
    config: dict[str, Any],
    out_dir: str | Path,
    device: torch.device,
    base_checkpoint: str | None = None,
    log: TextIO | None = None,
    loader_workers: int = 0,
) -> tuple[TrainingJob, dict[str, Any] | None]:
    """The job of one run, and the ``last.pt`` to resume it from (None: it starts afresh, from the
    base checkpoint if any, and the outputs of an earlier run are removed). ``loader_workers``: the
    processes that prepare the training batches (0: this process)."""
    out_dir, log = Path(out_dir), log or sys.stderr
    model_settings, settings = config["model"], config["training"]
    coverage = RaterCoverage(dataset)
    train_ids, val_ids = strategy_images(strategy, coverage, splits)
    raters = list(dataset.rater_names)
    base = base_checkpoint or model_settings["base_checkpoint"]
    label_map = LabelMap([c["id"] for c in dataset.categories])
    masks = is_mask_model(model_settings["name"]) and dataset_has_masks(dataset, coverage, train_ids)
    torch.manual_seed(settings["seed"])
    model = build_model(model_settings, label_map.num_classes, masks)
    # A changed base model or changed labels (a rerun pretrain, edited annotations) start afresh.
    inputs = [Path(base)] if base and Path(base).is_file() else []
    inputs += [dataset.coco_path(r) for r in raters]
    fingerprint = run_fingerprint({
        "model": model_settings, "training": settings, "strategy": strategy.token,
        "train": train_ids, "val": val_ids, "raters": raters, "base": base,
        "inputs": [file_digest(p) for p in inputs],
    })
    resume = resumable_checkpoint(out_dir / "last.pt", fingerprint, log)
    if resume is None:
        if base:
            load_weights(model, base)
        for stale in STALE_OUTPUTS:  # nothing of an earlier run may pass for this one's
            (out_dir / stale).unlink(missing_ok=True)
    apply_freeze(model, settings["freeze"])
    model.to(device)
    amp = device.type == "cuda" and settings["amp"]
    images, targets = TrainingImages(dataset, train_ids + val_ids), Targets(dataset, label_map, masks)
    samples = TrainingSamples(images, targets, strategy, coverage, settings["seed"], model_settings,
                              Augment(settings["augment_p"]) if settings["augment"] else None)
    batches = EpochBatches(settings["batch_size"])
    job = TrainingJob(
        dataset=dataset, coverage=coverage, strategy=strategy, config_id=config["config_id"], model_settings=model_settings,
        settings=settings, train_ids=train_ids, val_ids=val_ids, out_dir=out_dir, device=device, amp=amp,
        fingerprint=fingerprint, label_map=label_map, masks=masks, model=model,
        optimizer=make_optimizer([p for p in model.parameters() if p.requires_grad], settings),
        scaler=torch.amp.GradScaler("cuda", enabled=amp),
        schedule=LearningRate(settings, math.ceil(len(train_ids) / settings["batch_size"])),
        images=images, targets=targets, samples=samples, batches=batches,
        loader=make_loader(samples, batches, loader_workers, device), loader_workers=loader_workers,
    )
    return job, resume
