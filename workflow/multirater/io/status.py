"""The ``status.json`` of a model folder: how its training ended (written by training, read by
selection, calibration costs and prediction). One reader and one writer, torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_json, write_json

STATUSES = ("ok", "diverged", "out_of_memory", "failed")


def write_status(path: str | Path, status: str, strategy: str, config_id: str, progress: Any, message: str,
                 environment: dict[str, Any] | None = None) -> None:
    """Write ``status.json``: the status, the run's identity and how far it got (``progress`` is the
    run's :class:`~multirater.training.progress.Progress`, or None when it never started), and where it
    ran (``environment``: :func:`multirater.core.provenance.environment` of the training process)."""
    best_epoch = progress.best_epoch if progress is not None else None
    write_json(path, {
        "status": status, "strategy": strategy, "config_id": config_id,
        "epoch": progress.epoch if progress is not None else 0,  # epochs completed
        "best_epoch": best_epoch, "best_val_map": progress.best_val_map if best_epoch else None,
        "message": message, "environment": environment,
    })


def read_status(path: str | Path) -> dict[str, Any]:
    """One model's status.json, checked for the keys selection needs."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError("must be a JSON object", path)
    for key in ("strategy", "config_id", "status"):
        if not isinstance(data.get(key), str):
            raise UserError(f"missing or not a string: {data.get(key)!r}", path, key)
    if data["status"] not in STATUSES:
        raise UserError(f"must be one of {list(STATUSES)}, got {data['status']!r}", path, "status")
    return data
