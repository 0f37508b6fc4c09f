"""How a training run ended, as ``status.json`` says it: ok, diverged, out_of_memory or failed.

The file itself is read and written by :mod:`multirater.io.status`; selection ranks only ``ok`` models.
"""

from __future__ import annotations

import torch


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
