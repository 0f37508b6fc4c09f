"""Where a run stands (saved in ``last.pt``, so a rerun continues from it) and its per-epoch record,
``metrics.csv``."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from multirater.core.files import write_text

LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask")


@dataclass
class Progress:
    """The run's position and results so far; every field is a plain value (checkpoint-safe)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed within the current epoch
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's loss terms, images, steps, lr
    seconds: float = 0.0  # this epoch's training time so far
    best_val_map: float = -1.0
    best_epoch: int | None = None
    epochs_since_best: int = 0
    done: bool = False
    nonfinite_in_a_row: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics.csv row per epoch

    def state_dict(self) -> dict[str, Any]:
        """Everything but the history (``last.pt`` keeps that under its own key)."""
        state = asdict(self)
        del state["history"]
        return state

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> "Progress":
        """The progress saved in a ``last.pt``."""
        return cls(**{**checkpoint["progress"], "sums": dict(checkpoint["progress"]["sums"])},
                   history=list(checkpoint["history"]))

    def add_step(self, terms: dict[str, float], images: int, lr: float, seconds: float, waited: float = 0.0) -> None:
        """Account for one finished optimizer step (``seconds`` in all, ``waited`` of them for its batch)."""
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.sums["images"] = self.sums.get("images", 0.0) + images
        self.sums["steps"] = self.sums.get("steps", 0.0) + 1
        self.sums["lr"] = lr
        self.sums["waited"] = self.sums.get("waited", 0.0) + waited
        self.step += 1
        self.seconds += seconds

    def epoch_row(self, val: dict[str, float] | None, default_lr: float, val_seconds: float = 0.0) -> dict[str, Any]:
        """The metrics.csv row of the epoch just trained: mean losses, validation mAP (None when the
        epoch was not validated), lr, speed, and the seconds spent waiting for data and validating."""
        n_steps = max(self.sums.get("steps", 0.0), 1.0)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "loss": self.sums.get("loss", 0.0) / n_steps}
        for k in LOSS_KEYS:
            if k in self.sums:
                row[k] = self.sums[k] / n_steps
        row.update({
            "val_map": None if val is None else val["map"], "val_ap50": None if val is None else val["ap50"],
            "lr": self.sums.get("lr", default_lr), "seconds": self.seconds,
            "images_per_s": self.sums.get("images", 0.0) / self.seconds if self.seconds else 0.0,
            "data_seconds": self.sums.get("waited", 0.0), "val_seconds": val_seconds,
        })
        return row


def write_metrics_csv(path: str | Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv``: one row per epoch; a loss column only when some epoch has that term; an empty
    val_map and val_ap50 for an epoch that was not validated."""
    columns = ["epoch", "loss", *[k for k in LOSS_KEYS if any(k in r for r in history)],
               "val_map", "val_ap50", "lr", "seconds", "images_per_s", "data_seconds", "val_seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    write_text(path, buf.getvalue())
