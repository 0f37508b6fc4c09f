"""Checkpoint files: one reader and one writer for every ``.pt`` the package touches.

Our checkpoints are plain dicts of tensors and plain values (``{"format": CHECKPOINT_FORMAT,
"model": state_dict, ...}``; ``last.pt`` adds the optimizer, lr schedule, RNG states and progress,
see :mod:`multirater.training.loop`), written atomically. Base checkpoints may also be a bare state
dict or ``{"model_state_dict": ...}`` (GOAT's ``.bin``): :func:`read_checkpoint` reads any of them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TextIO

import torch

from multirater.core.errors import UserError
from multirater.core.files import atomic_path

CHECKPOINT_FORMAT = "multirater-checkpoint"


def read_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint file onto the CPU; a missing or unreadable file is a UserError.

    ``weights_only``: tensors and plain values only, so no pickled code is ever run.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint file not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, pickled code objects ...
        raise UserError(f"cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", path) from None


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (with our format tag) atomically: a kill mid-write leaves the old file."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)


def resumable_checkpoint(path: Path, fingerprint: str, log: TextIO) -> dict[str, Any] | None:
    """``last.pt`` if it exists, is readable and belongs to this run (same fingerprint); else None,
    with the reason in the log (the run then starts afresh rather than trusting it)."""
    if not path.exists():
        return None
    try:
        checkpoint = read_checkpoint(path)
    except UserError as exc:
        print(f"ignoring unreadable {path} ({exc.problem}); starting afresh", file=log)
        return None
    if not isinstance(checkpoint, dict) or checkpoint.get("fingerprint") != fingerprint:
        print(f"ignoring {path}: it belongs to another configuration; starting afresh", file=log)
        return None
    return checkpoint


def run_fingerprint(parts: dict[str, Any]) -> str:
    """A hash of everything that defines a run; a ``last.pt`` is resumed only if it matches."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes, read in chunks (base checkpoints can be hundreds of MB)."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """torch's generators only: augmentation and the detectors' samplers draw from nothing else
    (label choice and image order use generators seeded from (seed, epoch, image))."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
