"""How a training run ended, as ``status.json`` says it: ok, diverged, out_of_memory or failed.

Selection reads it: only ``ok`` models are ranked; the others are listed with their status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from multirater.core.files import write_json


class Diverged(Exception):
    """The loss became non-finite (with mixed precision: too many steps in a row)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA out-of-memory error and for a failed CPU allocation."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def outcome(exc: Exception) -> tuple[str, str]:
    """The status and message of a run that raised ``exc``."""
    if isinstance(exc, Diverged):
        return "diverged", str(exc)
    if is_out_of_memory(exc):
        return "out_of_memory", str(exc).splitlines()[0]
    return "failed", f"{type(exc).__name__}: {exc}"


def write_status(path: str | Path, status: str, strategy: str, config_id: str, progress: Any, message: str) -> None:
    """Write ``status.json``: the status, the run's identity and how far it got (``progress`` is the
    run's :class:`~multirater.training.progress.Progress`, or None when it never started)."""
    best_epoch = progress.best_epoch if progress is not None else None
    write_json(path, {
        "status": status, "strategy": strategy, "config_id": config_id,
        "epoch": progress.epoch if progress is not None else 0,  # epochs completed
        "best_epoch": best_epoch, "best_val_map": progress.best_val_map if best_epoch else None,
        "message": message,
    })
