"""One training job = one model = one (strategy, configuration): resumable, honest about failure.

Shaped like torchvision's detection references: :func:`train_one_epoch`, :func:`evaluate`, and a flat
loop over epochs (:func:`fit`) that saves a plain-dict checkpoint after each. The model folder gets
``best.pt`` (best validation mAP), ``last.pt`` (every epoch, and on SIGTERM/SIGUSR1 mid-epoch),
``metrics.csv`` (one row per epoch) and ``status.json``, which :func:`run_training` writes once, at
the end, whatever the outcome.

The training batches come from a DataLoader (:mod:`multirater.training.samples`), in worker processes
when the job has CPUs to spare; the loop waits for them only when the workers fall behind (the wait is
recorded per epoch, ``data_seconds``). Validation runs every ``training.val_every`` epochs
(:mod:`multirater.training.validation`).

Determinism: image order, LS rater choice, training crops and augmentation come from generators seeded
with (seed, epoch[, image]), whichever process makes the sample; torch's global generator (the
detector's box samplers) is reseeded at every epoch start and saved in ``last.pt``, so a resumed run
continues bitwise identically on CPU with the same thread count, and the number of loader workers
changes nothing.
"""

from __future__ import annotations

import contextlib
import math
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
from multirater.training.labels import Strategy, epoch_order
from multirater.training.progress import Progress, write_metrics_csv
from multirater.training.samples import start_batches, to_device
from multirater.training.validation import evaluate, validates
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
    if progress.step == 0:
        torch.manual_seed(epoch_seed(settings["seed"], epoch))
        progress.sums, progress.seconds = {}, 0.0
    job.batches.set_epoch(epoch, epoch_order(settings["seed"], epoch, job.train_ids), progress.step)
    job.model.train()
    batches = start_batches(job.loader)
    try:
        while progress.step < job.steps_per_epoch:
            start = time.perf_counter()
            images, targets = to_device(next(batches), job.device)
            waited = time.perf_counter() - start
            lr = job.schedule.at(epoch, progress.step)
            for group in job.optimizer.param_groups:
                group["lr"] = lr
            terms = train_step(job, images, targets, progress)
            progress.add_step(terms, len(images), lr, time.perf_counter() - start, waited)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.3f}", refresh=False)
            if after_step is not None:
                after_step(epoch, progress.step)
            if stop is not None and stop.received is not None and progress.step < job.steps_per_epoch:
                return
    finally:
        del batches  # ends the epoch's worker processes now, also when stopped or failed mid-epoch


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


def finish_epoch(job: TrainingJob, progress: Progress, val: dict[str, float] | None, val_seconds: float = 0.0) -> None:
    """Record a trained epoch and its validation (None: not validated this epoch): its metrics row, then,
    when validated, the lr schedule, ``best.pt`` when it is the best so far and early stopping; then
    ``last.pt`` and ``metrics.csv``. Patience counts epochs, validated or not."""
    since_validated = next((n for n, row in enumerate(reversed(progress.history), start=1)
                            if row.get("val_map") is not None), len(progress.history) + 1)
    progress.history.append(progress.epoch_row(val, job.settings["lr"], val_seconds))
    progress.epochs_since_best += 1
    patience = job.settings["patience"]
    stop_early = False
    if val is not None:
        job.schedule.end_epoch(val["map"], since_validated)
        if val["map"] > progress.best_val_map:
            progress.best_val_map, progress.best_epoch, progress.epochs_since_best = val["map"], progress.epoch + 1, 0
            save_checkpoint(job.out_dir / "best.pt", {
                "model": _weights(job), "meta": {**job.meta, "epoch": progress.epoch + 1, "val_map": val["map"]},
            })
        stop_early = 0 < patience <= progress.epochs_since_best
    progress.epoch, progress.step = progress.epoch + 1, 0
    progress.done = progress.epoch >= job.settings["epochs"] or stop_early
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
        val, val_seconds = None, 0.0
        if validates(job.settings, progress.epoch):
            start = time.perf_counter()
            val = evaluate(job)
            val_seconds = time.perf_counter() - start
        finish_epoch(job, progress, val, val_seconds)
        row = progress.history[-1]
        shown = f"val_mAP {row['val_map']:.4f} ({row['val_seconds']:.1f} s)" if val is not None else "not validated"
        print(f"[{job.strategy.token} {job.config_id}] epoch {row['epoch']}/{job.settings['epochs']} "
              f"loss {row['loss']:.4f} {shown} lr {row['lr']:.3g} {row['seconds']:.1f} s "
              f"(waited {row['data_seconds']:.1f} s for data) {row['images_per_s']:.1f} img/s", file=log, flush=True)
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
    loader_workers: int = 0,
) -> int:
    """Train one model into ``out_dir`` (``config``: complete settings, as read by
    :func:`~multirater.training.settings.read_training_config`); return the process exit status.
    ``loader_workers``: processes preparing the training batches (0: this process).

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
            job, resume = prepare_job(dataset, splits, strategy, config, out_dir, device, base_checkpoint, log,
                                      loader_workers)
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
