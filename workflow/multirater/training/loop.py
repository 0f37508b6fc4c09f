"""One training job = one model = one (strategy, configuration): resumable, honest about failure.

Outputs in the model folder: ``best.pt`` (best validation mAP), ``last.pt`` (every epoch, and on
SIGTERM/SIGUSR1 mid-epoch), ``metrics.csv`` (one row per epoch) and ``status.json``.

Determinism: image order and LS rater choice come from generators seeded with (seed, epoch[, image]);
torch's generator (augmentation, the detector's box samplers) is reseeded at every epoch start and
saved in ``last.pt``, so a resumed run continues bitwise identically on CPU with the same thread count.
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from multirater.data.dataset import Dataset
from multirater.core.errors import UserError
from multirater.core.files import read_json, write_json, write_text
from multirater.training.models import apply_freeze, build_model, is_mask_model, load_weights
from multirater.training.prediction import detect, to_xywh
from multirater.training.augment import Augment
from multirater.training.checkpoints import file_digest, load_checkpoint, rng_state, run_fingerprint, save_checkpoint, set_rng_state
from multirater.training.data import ImageCache, LabelMap, Targets, dataset_has_masks
from multirater.training.labels import Strategy, epoch_order, training_sources, validation_sources
from multirater.training.schedule import LearningRate
from multirater.training.validation import coco_map

# Exit status of a run stopped by SIGTERM/SIGUSR1 after saving last.pt (EX_TEMPFAIL: "try again").
EXIT_PREEMPTED = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# With mixed precision a few overflowing steps are normal (the grad scaler skips them); this many in
# a row means the run has diverged.
AMP_NONFINITE_LIMIT = 10
LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask")


class Diverged(Exception):
    pass


class Preempted(Exception):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is available", None, "--device")
    if name not in ("cpu", "cuda"):
        raise UserError(f"must be auto, cpu or cuda, got {name!r}", None, "--device")
    return torch.device(name)


def read_splits(path: str | Path, dataset: Dataset) -> dict[str, list[int]]:
    """splits.json, checked against the dataset: train/val are multi-rater images."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError("must be a JSON object with train, val and test", path)
    known = set(dataset.rater_image_ids)
    out: dict[str, list[int]] = {}
    for key in ("train", "val", "test"):
        ids = data.get(key, [] if key == "test" else None)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise UserError("must be a list of image ids", path, key)
        if key != "test":
            unknown = sorted(set(ids) - known)
            if unknown:
                raise UserError(f"ids not among the dataset's multi-rater images: {unknown[:5]}", path, key)
        out[key] = sorted(ids)
    for key in ("train", "val"):
        if not out[key]:
            raise UserError("is empty; training needs training and validation images", path, key)
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 0x70C4]).generate_state(1, np.uint64)[0] >> 1)


def _make_optimizer(params: list[torch.nn.Parameter], s: dict[str, Any]) -> torch.optim.Optimizer:
    if s["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"])
    if s["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"])
    return torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])


class Trainer:
    """Model, optimizer, data and progress of one run; :meth:`fit` trains to the end (or a stop)."""

    def __init__(
        self,
        dataset: Dataset,
        splits: dict[str, list[int]],
        strategy: Strategy,
        config: dict[str, Any],
        out_dir: str | Path,
        device: torch.device,
        base_checkpoint: str | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.dataset = dataset
        self.strategy = strategy
        self.model_settings = config["model"]
        self.s = config["training"]
        self.config_id = config["config_id"]
        self.out_dir = Path(out_dir)
        self.device = device
        self.log = log or sys.stderr
        self.train_ids = list(splits["train"])
        self.val_ids = list(splits["val"])
        self.raters = list(dataset.rater_names)
        self.base = base_checkpoint or self.model_settings["base_checkpoint"]

        self.label_map = LabelMap([c["id"] for c in dataset.categories])
        self.masks = is_mask_model(self.model_settings["name"]) and dataset_has_masks(
            dataset, self.raters, self.train_ids
        )
        torch.manual_seed(self.s["seed"])
        self.model = build_model(self.model_settings, self.label_map.num_classes, self.masks)
        # A changed base model or changed labels (a rerun pretrain, edited annotations) start afresh.
        inputs = [Path(self.base)] if self.base and Path(self.base).is_file() else []
        inputs += [dataset.coco_path(r) for r in self.raters]
        self.fingerprint = run_fingerprint({
            "model": self.model_settings, "training": self.s, "strategy": strategy.token,
            "train": self.train_ids, "val": self.val_ids, "raters": self.raters, "base": self.base,
            "inputs": [file_digest(p) for p in inputs],
        })
        self.resume_state = self._resumable_checkpoint()
        if self.resume_state is None:
            if self.base:
                load_weights(self.model, self.base)
            # Starting afresh: nothing of an earlier run may pass for this one's.
            for stale in ("best.pt", "last.pt", "metrics.csv"):
                (self.out_dir / stale).unlink(missing_ok=True)
        apply_freeze(self.model, self.s["freeze"])
        self.model.to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _make_optimizer(self.params, self.s)
        self.amp = device.type == "cuda" and self.s["amp"]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.images = ImageCache(dataset)
        self.targets = Targets(dataset, self.label_map, self.masks)
        self.augment = Augment(self.s["augment_p"]) if self.s["augment"] else None
        self.steps_per_epoch = math.ceil(len(self.train_ids) / self.s["batch_size"])
        self.lr = LearningRate(self.s, self.steps_per_epoch)

        # Progress (all saved in last.pt).
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed within the current epoch
        self.sums: dict[str, float] = {}
        self.epoch_seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.best_val_map = -1.0
        self.best_epoch: int | None = None
        self.epochs_since_best = 0
        self.done = False
        self.nonfinite_in_a_row = 0
        self.stop_signal: int | None = None
        self.after_step: Callable[[int, int], None] | None = None

    # ------------------------------------------------------------------ checkpoints
    @property
    def meta(self) -> dict[str, Any]:
        return {
            "model_settings": self.model_settings, "num_classes": self.label_map.num_classes, "masks": self.masks,
            "category_ids": self.label_map.category_ids, "strategy": self.strategy.token,
            "config_id": self.config_id, "training": self.s,
        }

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def _resumable_checkpoint(self) -> dict[str, Any] | None:
        path = self.out_dir / "last.pt"
        if not path.exists():
            return None
        try:
            ckpt = load_checkpoint(path)
        except Exception as exc:  # a last.pt we cannot read is started over, not trusted
            print(f"ignoring unreadable {path} ({type(exc).__name__}); starting afresh", file=self.log)
            return None
        if ckpt.get("fingerprint") != self.fingerprint:
            print(f"ignoring {path}: it belongs to another configuration; starting afresh", file=self.log)
            return None
        return ckpt

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.lr.load_state_dict(ckpt["schedule"])
        p = ckpt["progress"]
        self.epoch, self.step, self.sums = p["epoch"], p["step"], dict(p["sums"])
        self.epoch_seconds = p["seconds"]
        self.best_val_map, self.best_epoch = p["best_val_map"], p["best_epoch"]
        self.epochs_since_best, self.done = p["epochs_since_best"], p["done"]
        self.nonfinite_in_a_row = p["nonfinite_in_a_row"]
        self.history = list(ckpt["history"])
        set_rng_state(ckpt["rng"])
        print(f"resuming from {self.out_dir / 'last.pt'}: epoch {self.epoch + 1}, step {self.step}", file=self.log)

    def save_last(self) -> None:
        save_checkpoint(self.out_dir / "last.pt", {
            "model": self._weights(), "meta": self.meta, "fingerprint": self.fingerprint,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "schedule": self.lr.state_dict(), "rng": rng_state(), "history": self.history,
            "progress": {
                "epoch": self.epoch, "step": self.step, "sums": self.sums, "seconds": self.epoch_seconds,
                "best_val_map": self.best_val_map, "best_epoch": self.best_epoch,
                "epochs_since_best": self.epochs_since_best, "done": self.done,
                "nonfinite_in_a_row": self.nonfinite_in_a_row,
            },
        })

    def _save_best(self, val_map: float) -> None:
        save_checkpoint(self.out_dir / "best.pt", {
            "model": self._weights(), "meta": {**self.meta, "epoch": self.epoch + 1, "val_map": val_map},
        })

    # ------------------------------------------------------------------ steps
    def batch(self, epoch: int, ids: list[int]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        images, targets = [], []
        for image_id in ids:
            image = self.images[image_id]
            target = self.targets.get(training_sources(self.strategy, self.raters, self.s["seed"], epoch, image_id), image_id)
            if self.augment is not None:
                image, target = self.augment(image, target)
            images.append(image.to(self.device, non_blocking=True))
            targets.append({k: v.to(self.device, non_blocking=True) for k, v in target.items()})
        return images, targets

    def train_step(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimizer step; returns the loss terms. Raises Diverged on a non-finite loss."""
        self.model.train()
        with torch.autocast(self.device.type, enabled=self.amp):
            losses = self.model(images, targets)
        loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            self.nonfinite_in_a_row += 1
            if not self.amp or self.nonfinite_in_a_row >= AMP_NONFINITE_LIMIT:
                raise Diverged(f"non-finite loss ({value}) at epoch {self.epoch + 1}, step {self.step + 1}")
        else:
            self.nonfinite_in_a_row = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["loss"] = value
        return out

    def train_epoch(self, progress: Any = None) -> None:
        """Run (the rest of) the current epoch's steps; stops early on a stop signal."""
        epoch, bs = self.epoch, self.s["batch_size"]
        order = epoch_order(self.s["seed"], epoch, self.train_ids)
        if self.step == 0:
            torch.manual_seed(_epoch_seed(self.s["seed"], epoch))
            self.sums, self.epoch_seconds = {}, 0.0
        while self.step < self.steps_per_epoch:
            start = time.perf_counter()
            lr = self.lr.at(epoch, self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            ids = order[self.step * bs:(self.step + 1) * bs]
            terms = self.train_step(*self.batch(epoch, ids))
            for k, v in terms.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
            self.sums["images"] = self.sums.get("images", 0.0) + len(ids)
            self.sums["steps"] = self.sums.get("steps", 0.0) + 1
            self.sums["lr"] = lr
            self.step += 1
            self.epoch_seconds += time.perf_counter() - start
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{terms['loss']:.3f}", refresh=False)
            if self.after_step is not None:
                self.after_step(epoch, self.step)
            if self.stop_signal is not None and self.step < self.steps_per_epoch:
                self.save_last()
                raise Preempted(f"stopped by signal {self.stop_signal} at epoch {epoch + 1}, step {self.step}")

    def validate(self) -> dict[str, float]:
        images = [self.images[i] for i in self.val_ids]
        dets = detect(self.model, images, max(self.s["batch_size"], 1), self.device, self.amp)
        ground_truth, detections = [], []
        for source in validation_sources(self.strategy, self.raters):
            for image_id, (boxes, scores, labels) in zip(self.val_ids, dets):
                ground_truth.append((self.dataset.boxes(source, image_id), self.dataset.labels(source, image_id)))
                detections.append((to_xywh(boxes), scores, self.label_map.categories(labels)))
        return coco_map(ground_truth, detections, self.label_map.category_ids, self.s["val_max_dets"])

    def end_epoch(self, val: dict[str, float]) -> None:
        n_steps = max(self.sums.get("steps", 0.0), 1.0)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "loss": self.sums.get("loss", 0.0) / n_steps}
        for k in LOSS_KEYS:
            if k in self.sums:
                row[k] = self.sums[k] / n_steps
        row.update({
            "val_map": val["map"], "val_ap50": val["ap50"], "lr": self.sums.get("lr", self.s["lr"]),
            "seconds": self.epoch_seconds,
            "images_per_s": self.sums.get("images", 0.0) / self.epoch_seconds if self.epoch_seconds else 0.0,
        })
        self.history.append(row)
        self.lr.end_epoch(val["map"])
        if val["map"] > self.best_val_map:
            self.best_val_map, self.best_epoch, self.epochs_since_best = val["map"], self.epoch + 1, 0
            self._save_best(val["map"])
        else:
            self.epochs_since_best += 1
        self.epoch += 1
        self.step = 0
        patience = self.s["patience"]
        self.done = self.epoch >= self.s["epochs"] or (patience > 0 and self.epochs_since_best >= patience)
        self.save_last()
        self.write_metrics()

    def write_metrics(self) -> None:
        columns = ["epoch", "loss", *[k for k in LOSS_KEYS if any(k in r for r in self.history)],
                   "val_map", "val_ap50", "lr", "seconds", "images_per_s"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: row.get(k, "") for k in columns})
        write_text(self.out_dir / "metrics.csv", buf.getvalue())

    # ------------------------------------------------------------------ the run
    def fit(self) -> None:
        if self.resume_state is not None:
            self._restore(self.resume_state)
            self.resume_state = None
        use_bar = self.log.isatty() if hasattr(self.log, "isatty") else False
        while not self.done:
            bar = None
            if use_bar:
                from tqdm import tqdm

                bar = tqdm(total=self.steps_per_epoch, initial=self.step, desc=f"epoch {self.epoch + 1}/{self.s['epochs']}",
                           file=self.log, leave=False)
            try:
                self.train_epoch(bar)
            finally:
                if bar is not None:
                    bar.close()
            val = self.validate()
            self.end_epoch(val)
            row = self.history[-1]
            print(f"[{self.strategy.token} {self.config_id}] epoch {row['epoch']}/{self.s['epochs']} "
                  f"loss {row['loss']:.4f} val_mAP {row['val_map']:.4f} lr {row['lr']:.3g} "
                  f"{row['seconds']:.1f} s {row['images_per_s']:.1f} img/s", file=self.log, flush=True)
            if self.stop_signal is not None and not self.done:
                raise Preempted(f"stopped by signal {self.stop_signal} after epoch {self.epoch}")

    def status(self, status: str, message: str = "") -> dict[str, Any]:
        return {
            "status": status, "strategy": self.strategy.token, "config_id": self.config_id, "epoch": self.epoch,
            "best_epoch": self.best_epoch, "best_val_map": self.best_val_map if self.best_epoch else None,
            "message": message,
        }


class _StopSignals:
    """While active, SIGTERM/SIGUSR1 only set ``trainer.stop_signal``; the loop saves and exits."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.old: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.trainer.stop_signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def run_training(
    dataset: Dataset,
    splits: dict[str, list[int]],
    strategy: Strategy,
    config: dict[str, Any],
    out_dir: str | Path,
    device: torch.device,
    base_checkpoint: str | None = None,
    log: TextIO | None = None,
    after_step: Callable[[int, int], None] | None = None,
) -> int:
    """Train one model into ``out_dir``; return the process exit status.

    0 with status ``ok``, ``diverged`` or ``out_of_memory`` in status.json; EXIT_PREEMPTED (75) after a
    stop signal (last.pt saved, no status.json); other errors write status ``failed`` and propagate.
    Invalid input (a UserError) propagates before anything is written.
    """
    log = log or sys.stderr
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    status_path = out_dir / "status.json"
    # A status from an earlier run must not outlive this one (a preempted run leaves none).
    status_path.unlink(missing_ok=True)
    trainer = None
    try:
        trainer = Trainer(dataset, splits, strategy, config, out_dir, device, base_checkpoint, log)
        trainer.after_step = after_step
        with _StopSignals(trainer):
            trainer.fit()
        write_json(status_path, trainer.status("ok"))
        return 0
    except UserError:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()  # bad input leaves nothing behind
        raise
    except Preempted as exc:
        print(f"{exc}; saved {out_dir / 'last.pt'}; exit {EXIT_PREEMPTED} (rerun to resume)", file=log, flush=True)
        return EXIT_PREEMPTED
    except Diverged as exc:
        print(f"diverged: {exc}", file=log, flush=True)
        write_json(status_path, _status(trainer, config, strategy, "diverged", str(exc)))
        return 0
    except Exception as exc:
        if is_out_of_memory(exc):
            print(f"out of memory: {exc}", file=log, flush=True)
            write_json(status_path, _status(trainer, config, strategy, "out_of_memory", str(exc).splitlines()[0]))
            return 0
        write_json(status_path, _status(trainer, config, strategy, "failed", f"{type(exc).__name__}: {exc}"))
        raise


def _status(trainer: Trainer | None, config: dict[str, Any], strategy: Strategy, status: str, message: str) -> dict[str, Any]:
    if trainer is not None:
        return trainer.status(status, message)
    return {"status": status, "strategy": strategy.token, "config_id": config["config_id"], "epoch": 0,
            "best_epoch": None, "best_val_map": None, "message": message}
