"""The learning rate per step: linear warm-up, then cosine decay or reduce-on-plateau of validation mAP.

Kept as a small explicit state (saved in checkpoints) rather than stacked torch schedulers, so a
resumed run continues with exactly the same rates.
"""

from __future__ import annotations

import math
from typing import Any


class LearningRate:
    """The rate of every step of a run, from the training settings and the epoch length."""

    def __init__(self, settings: dict[str, Any], steps_per_epoch: int) -> None:
        self.base = settings["lr"]
        self.schedule = settings["schedule"]
        self.epochs = settings["epochs"]
        self.warmup_epochs = settings["warmup_epochs"]
        self.plateau_patience = settings["plateau_patience"]
        self.plateau_factor = settings["plateau_factor"]
        self.steps_per_epoch = steps_per_epoch
        # Reduce-on-plateau state.
        self.scale = 1.0
        self.best = -math.inf
        self.bad_epochs = 0

    def at(self, epoch: int, step: int) -> float:
        """The rate for ``step`` (0-based) of ``epoch`` (0-based)."""
        t = epoch + step / self.steps_per_epoch  # epochs done, fractional
        if self.warmup_epochs and t < self.warmup_epochs:
            return self.base * (0.1 + 0.9 * t / self.warmup_epochs)
        if self.schedule == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1)
            progress = min((t - self.warmup_epochs) / span, 1.0)
            return self.base * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.base * self.scale

    def end_epoch(self, val_map: float, epochs: int = 1) -> None:
        """Reduce-on-plateau: scale the rate down after ``plateau_patience`` epochs without progress
        (``epochs``: those since the previous validation, this one included)."""
        if self.schedule != "plateau":
            return
        if val_map > self.best:
            self.best = val_map
            self.bad_epochs = 0
        else:
            self.bad_epochs += epochs
            if self.bad_epochs > self.plateau_patience:
                self.scale *= self.plateau_factor
                self.bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        """The reduce-on-plateau state (for last.pt)."""
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
