"""One training job = one model = one (strategy, configuration): resumable, honest about failure.

Shaped like torchvision's detection references: :func:`train_one_epoch`, :func:`evaluate`, and a flat
loop over epochs (:func:`fit`) that saves a plain-dict checkpoint after each. The model folder gets
``best.pt`` (best validation mAP), ``last.pt`` (every epoch, and on SIGTERM/SIGUSR1 mid-epoch),
``metrics.csv`` (one row per epoch) and ``status.json``, which :func:`run_training` writes once, at
the end, whatever the outcome.

Determinism: image order, LS rater choice and training crops come from generators seeded with
(seed, epoch[, image]); torch's generator (augmentation, the detector's box samplers) is reseeded at
every epoch start and saved in ``last.pt``, so a resumed run continues bitwise identically on CPU
with the same thread count.
"""

from __future__ import annotations

import contextlib
import math
from functools import partial
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from multirater.core.errors import UserError
from multirater.core.provenance import environment
from multirater.data.dataset import Dataset
from multirater.io.status import write_status
from multirater.training.checkpoints import rng_state, save_checkpoint, set_rng_state
from multirater.training.job import TrainingJob, prepare_job
from multirater.training.labels import Strategy, epoch_order, validation_sources
from multirater.training.prediction import detect, detect_large, to_xywh
from multirater.training.progress import Progress, write_metrics_csv
from multirater.training.signals import EXIT_PREEMPTED, Preempted, StopSignals
from multirater.training.status import Diverged, outcome
from multirater.training.validation_map import coco_map

# With mixed precision a few overflowing steps are normal (the grad scaler skips them); this many in
# a row means the run has diverged.
AMP_NONFINITE_LIMIT = 10

AfterStep = Callable[[int, int], None]  # (epoch, steps done in it): a hook, e.g. for tests


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of torch's generator at the start of ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, 0x70C4]).generate_state(1, np.uint64)[0] >> 1)


def train_step(job: TrainingJob, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]],
               progress: Progress) -> dict[str, float]:
    """One optimizer step; returns the loss terms. Raises Diverged on a non-finite loss."""
    with torch.autocast(job.device.type, enabled=job.amp):
        losses = job.model(images, targets)
    loss = sum(losses.values())
    value = float(loss.detach())
    if not math.isfinite(value):
        progress.nonfinite_in_a_row += 1
        if not job.amp or progress.nonfinite_in_a_row >= AMP_NONFINITE_LIMIT:
            raise Diverged(f"non-finite loss ({value}) at epoch {progress.epoch + 1}, step {progress.step + 1}")
    else:
        progress.nonfinite_in_a_row = 0
    job.optimizer.zero_grad(set_to_none=True)
    job.scaler.scale(loss).backward()
    job.scaler.step(job.optimizer)
    job.scaler.update()
    terms = {k: float(v.detach()) for k, v in losses.items()}
    terms["loss"] = value
    return terms


def train_one_epoch(job: TrainingJob, progress: Progress, stop: StopSignals | None = None,
                    after_step: AfterStep | None = None, bar: Any = None) -> None:
    """Train the current epoch from ``progress.step`` (0 unless resumed mid-epoch) to its end, or
    only until the step after a stop signal arrives."""
    settings, epoch = job.settings, progress.epoch
    batch_size = settings["batch_size"]
    order = epoch_order(settings["seed"], epoch, job.train_ids)
    if progress.step == 0:
        torch.manual_seed(epoch_seed(settings["seed"], epoch))
        progress.sums, progress.seconds = {}, 0.0
    job.model.train()
    while progress.step < job.steps_per_epoch:
        start = time.perf_counter()
        lr = job.schedule.at(epoch, progress.step)
        for group in job.optimizer.param_groups:
            group["lr"] = lr
        ids = order[progress.step * batch_size:(progress.step + 1) * batch_size]
        terms = train_step(job, *job.batch(epoch, ids), progress)
        progress.add_step(terms, len(ids), lr, time.perf_counter() - start)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.3f}", refresh=False)
        if after_step is not None:
            after_step(epoch, progress.step)
        if stop is not None and stop.received is not None and progress.step < job.steps_per_epoch:
            return


def validation_detections(job: TrainingJob) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The model's (boxes, scores, labels) on each validation image, in overlapping windows when
    tiling is on (as predictions are made)."""
    batch_size = job.settings["batch_size"]
    if job.model_settings.get("tile_size") is None:
        return detect(job.model, [job.images[i] for i in job.val_ids], batch_size, job.device, job.amp)
    return [detect_large(job.model, partial(job.images.region, image_id), *job.images.size(image_id),
                         job.model_settings, batch_size, job.device, job.amp) for image_id in job.val_ids]


def evaluate(job: TrainingJob) -> dict[str, float]:
    """Validation mAP and AP50 (COCO) of the model; each validation image counts once per rater the
    strategy validates on who labelled it."""
    found = validation_detections(job)
    ground_truth, detections = [], []
    for source in validation_sources(job.strategy, job.raters):
        for image_id, (boxes, scores, labels) in zip(job.val_ids, found):
            if not job.coverage.labelled(source, image_id):
                continue
            ground_truth.append((job.dataset.boxes(source, image_id), job.dataset.labels(source, image_id)))
            detections.append((to_xywh(boxes), scores, job.label_map.categories(labels)))
    return coco_map(ground_truth, detections, job.label_map.category_ids, job.settings["val_max_dets"])


def _weights(job: TrainingJob) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in job.model.state_dict().items()}


def save_last(job: TrainingJob, progress: Progress) -> None:
    """``last.pt``: everything a rerun needs to continue exactly here."""
    save_checkpoint(job.out_dir / "last.pt", {
        "model": _weights(job), "meta": job.meta, "fingerprint": job.fingerprint,
        "optimizer": job.optimizer.state_dict(), "scaler": job.scaler.state_dict(),
        "schedule": job.schedule.state_dict(), "rng": rng_state(), "history": progress.history,
        "progress": progress.state_dict(),
    })


def restore(job: TrainingJob, checkpoint: dict[str, Any]) -> Progress:
    """Put a ``last.pt`` back into the job; returns the progress it had."""
    job.model.load_state_dict(checkpoint["model"])
    job.optimizer.load_state_dict(checkpoint["optimizer"])
    job.scaler.load_state_dict(checkpoint["scaler"])
    job.schedule.load_state_dict(checkpoint["schedule"])
    set_rng_state(checkpoint["rng"])
    return Progress.from_checkpoint(checkpoint)


def finish_epoch(job: TrainingJob, progress: Progress, val: dict[str, float]) -> None:
    """Record a trained and validated epoch: its metrics row, the lr schedule, ``best.pt`` when it is
    the best so far, early stopping, then ``last.pt`` and ``metrics.csv``."""
    progress.history.append(progress.epoch_row(val, job.settings["lr"]))
    job.schedule.end_epoch(val["map"])
    if val["map"] > progress.best_val_map:
        progress.best_val_map, progress.best_epoch, progress.epochs_since_best = val["map"], progress.epoch + 1, 0
        save_checkpoint(job.out_dir / "best.pt", {
            "model": _weights(job), "meta": {**job.meta, "epoch": progress.epoch + 1, "val_map": val["map"]},
        })
    else:
        progress.epochs_since_best += 1
    progress.epoch, progress.step = progress.epoch + 1, 0
    patience = job.settings["patience"]
    progress.done = progress.epoch >= job.settings["epochs"] or (0 < patience <= progress.epochs_since_best)
    save_last(job, progress)
    write_metrics_csv(job.out_dir / "metrics.csv", progress.history)


@contextlib.contextmanager
def _epoch_bar(job: TrainingJob, progress: Progress, log: TextIO) -> Iterator[Any]:
    """A tqdm bar over the epoch's steps when the log is a terminal, else None."""
    if not (hasattr(log, "isatty") and log.isatty()):
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=job.steps_per_epoch, initial=progress.step, file=log, leave=False,
               desc=f"epoch {progress.epoch + 1}/{job.settings['epochs']}")
    try:
        yield bar
    finally:
        bar.close()


def fit(job: TrainingJob, progress: Progress, stop: StopSignals, log: TextIO,
        after_step: AfterStep | None = None) -> None:
    """Train until the last epoch or early stopping. On a stop signal, save ``last.pt`` and raise
    Preempted: mid-epoch after the current step, else after the epoch."""
    while not progress.done:
        with _epoch_bar(job, progress, log) as bar:
            train_one_epoch(job, progress, stop, after_step, bar)
        if progress.step < job.steps_per_epoch:  # stopped mid-epoch
            save_last(job, progress)
            raise Preempted(f"stopped by signal {stop.received} at epoch {progress.epoch + 1}, step {progress.step}")
        finish_epoch(job, progress, evaluate(job))
        row = progress.history[-1]
        print(f"[{job.strategy.token} {job.config_id}] epoch {row['epoch']}/{job.settings['epochs']} "
              f"loss {row['loss']:.4f} val_mAP {row['val_map']:.4f} lr {row['lr']:.3g} "
              f"{row['seconds']:.1f} s {row['images_per_s']:.1f} img/s", file=log, flush=True)
        if stop.received is not None and not progress.done:
            raise Preempted(f"stopped by signal {stop.received} after epoch {progress.epoch}")


def run_training(
    dataset: Dataset,
    splits: dict[str, list[int]],
    strategy: Strategy,
    config: dict[str, Any],
    out_dir: str | Path,
    device: torch.device,
    base_checkpoint: str | None = None,
    log: TextIO | None = None,
    after_step: AfterStep | None = None,
) -> int:
    """Train one model into ``out_dir`` (``config``: complete settings, as read by
    :func:`~multirater.training.settings.read_training_config`); return the process exit status.

    0 with status ``ok``, ``diverged`` or ``out_of_memory`` in status.json; EXIT_PREEMPTED (75) after a
    stop signal (last.pt saved, no status.json); any other error writes status ``failed`` and
    propagates. Invalid input (a UserError) propagates before anything is written.
    """
    log = log or sys.stderr
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    status_path = out_dir / "status.json"
    status_path.unlink(missing_ok=True)  # an earlier run's status must not outlive this one
    progress: Progress | None = None
    try:
        with StopSignals() as stop:
            job, resume = prepare_job(dataset, splits, strategy, config, out_dir, device, base_checkpoint, log)
            progress = Progress()
            if resume is not None:
                progress = restore(job, resume)
                print(f"resuming from {out_dir / 'last.pt'}: epoch {progress.epoch + 1}, step {progress.step}",
                      file=log)
            fit(job, progress, stop, log, after_step)
        status, message, error = "ok", "", None
    except UserError:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # bad input leaves nothing behind
        raise
    except Preempted as exc:
        print(f"{exc}; saved {out_dir / 'last.pt'}; exit {EXIT_PREEMPTED} (rerun to resume)", file=log, flush=True)
        return EXIT_PREEMPTED
    except Exception as exc:
        (status, message), error = outcome(exc), exc
        print(f"{status}: {message}", file=log, flush=True)
    write_status(status_path, status, strategy.token, config["config_id"], progress, message,
                 environment(device))
    if error is not None and status == "failed":
        raise error
    return 0
