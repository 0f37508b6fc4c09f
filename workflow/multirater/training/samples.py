"""The training data as a ``torch.utils.data`` pipeline: samples keyed by (epoch, image id), batches of an
epoch's image order, and the DataLoader that reads them in worker processes.

**Independent of the workers.** Everything random about a sample comes from (seed, epoch, image id): the
rater whose labels it gets (label sampling, :func:`~multirater.training.labels.training_sources`), its
crop (:func:`~multirater.training.tiling.crop_window`) and its augmentation (a generator seeded here). No
sample reads torch's global generator, and the loader draws its own base seed from a generator of its
own, so the global generator, which the detector's samplers use in the training process, sees the same
sequence whether samples are made in the training process (0 workers) or in any number of workers: the
same seed gives the same batches and the same losses with 0, 1 or 2 workers (tests/test_samples.py).

**Workers.** ``resources.loader_workers`` (``multirater train --loader-workers``), else from the job's
CPUs (:func:`default_loader_workers`). Workers are started for each epoch and end with it; they inherit
(by fork) the images decoded at the start (:mod:`~multirater.training.image_store`) and read TIFF
windows themselves. Stop signals are ignored in the workers: SLURM signals every process of a job, and
the training process alone decides when to stop (after the current step, saving ``last.pt``). The
signals stay blocked while the workers fork (:func:`start_batches`): a signal that arrived before a
worker ignored it would kill that worker and fail the step instead of stopping the job.

**On CUDA** batches come in pinned memory (the loader's pin-memory thread), so the copies to the device
are asynchronous (``non_blocking``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from multirater.training.augment import Augment
from multirater.training.coverage import RaterCoverage
from multirater.training.data import Targets
from multirater.training.image_store import TrainingImages
from multirater.training.labels import Strategy, training_sources
from multirater.training.signals import STOP_SIGNALS
from multirater.training.tiling import crop_window

Sample = tuple[torch.Tensor, dict[str, torch.Tensor]]
Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]

# Sets the augmentation generator apart from the label (no stream) and crop (CROP_STREAM) generators,
# which are seeded with the same (seed, epoch, image id).
AUGMENT_STREAM = 0xA06E
# Batches each worker prepares ahead of the training step.
PREFETCH_BATCHES = 2


def sample_generator(seed: int, epoch: int, image_id: int) -> torch.Generator:
    """The generator of one sample's augmentation."""
    state = np.random.SeedSequence([seed, epoch, image_id, AUGMENT_STREAM]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> 1))


def default_loader_workers(cpus: int, device: torch.device) -> int:
    """Loader workers for a job with ``cpus`` CPUs: on a GPU, every CPU but the one that drives the GPU;
    on the CPU, one worker (the model's threads use the CPUs; one worker overlaps the input with them)
    when there are at least two CPUs; none with one CPU."""
    if cpus <= 1:
        return 0
    return cpus - 1 if device.type == "cuda" else 1


class TrainingSamples(torch.utils.data.Dataset):
    """Sample ``(epoch, image_id)``: the image, or its crop of this epoch, with this epoch's target
    (the strategy's labels), augmented; float32 CHW pixels and CPU tensors."""

    def __init__(self, images: TrainingImages, targets: Targets, strategy: Strategy, coverage: RaterCoverage,
                 seed: int, model_settings: dict[str, Any], augment: Augment | None) -> None:
        self.images, self.targets, self.strategy, self.coverage = images, targets, strategy, coverage
        self.seed, self.augment = seed, augment
        self.tile, self.min_visible = model_settings.get("tile_size"), model_settings["tile_min_visible"]

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        epoch, image_id = key
        sources = training_sources(self.strategy, self.coverage.raters_of(image_id), self.seed, epoch, image_id)
        if self.tile is None:
            image, target = self.images[image_id], self.targets.get(sources, image_id)
        else:
            window = crop_window(self.seed, epoch, image_id, *self.images.size(image_id), self.tile)
            image = self.images.region(image_id, window)
            target = self.targets.get(sources, image_id, window, self.min_visible)
        if self.augment is not None:
            image, target = self.augment(image, target, sample_generator(self.seed, epoch, image_id))
        return image, target


class EpochBatches:
    """The batches of one epoch (``set_epoch``): its image order cut into ``batch_size`` keys, from a
    given step on (a resumed run starts mid-epoch)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.epoch, self.order, self.first_step = 0, [], 0

    def set_epoch(self, epoch: int, order: list[int], first_step: int = 0) -> None:
        """Serve ``order`` (the epoch's image ids) from batch ``first_step`` on."""
        self.epoch, self.order, self.first_step = epoch, list(order), first_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for start in range(self.first_step * self.batch_size, len(self.order), self.batch_size):
            yield [(self.epoch, image_id) for image_id in self.order[start:start + self.batch_size]]

    def __len__(self) -> int:
        return max(-(-len(self.order) // self.batch_size) - self.first_step, 0)


def as_lists(samples: list[Sample]) -> Batch:
    """A batch as the detector takes it: a list of images and a list of targets."""
    return [s[0] for s in samples], [s[1] for s in samples]


def _ignore_stop_signals(worker_id: int) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # also discards one that arrived while blocked
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_batches(loader: DataLoader) -> Iterator[Batch]:
    """``iter(loader)``, with the stop signals blocked while it forks the workers: each worker starts
    with them blocked and unblocks them only once it ignores them; this process gets any that arrived
    when they are unblocked again here."""
    if not loader.num_workers:
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def make_loader(samples: TrainingSamples, batches: EpochBatches, workers: int, device: torch.device) -> DataLoader:
    """The DataLoader of a job: ``workers`` processes (0: in the training process), pinned batches on CUDA."""
    return DataLoader(
        samples, batch_sampler=batches, num_workers=workers, collate_fn=as_lists,
        pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals if workers else None,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
        generator=torch.Generator().manual_seed(0),  # the loader's own: the global generator stays untouched
    )


def to_device(batch: Batch, device: torch.device) -> Batch:
    """A batch on the device (asynchronous copies from pinned memory on CUDA)."""
    images, targets = batch
    return ([im.to(device, non_blocking=True) for im in images],
            [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets])
