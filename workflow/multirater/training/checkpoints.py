"""Our checkpoints: model weights plus everything needed to rebuild the model and resume training
(optimizer, schedule, RNG states, position in the epoch, metrics so far), written atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from multirater.core.files import atomic_path
from multirater.training.models import CHECKPOINT_FORMAT


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
    # Only torch's generators: augmentation and the detectors' samplers draw from nothing else
    # (label choice and image order use generators seeded from (seed, epoch, image)).
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (with our format tag) atomically: a kill mid-write leaves the old file."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load one of our checkpoints (tensors and plain values only, so no pickled code is run)."""
    return torch.load(path, map_location="cpu", weights_only=True)
