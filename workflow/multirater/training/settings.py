"""Training and model settings: every key, its default, and validation (no torch here).

A training configuration file is ``{model: {...}, training: {...}, config_id: ...}``; missing keys take the
defaults below, unknown keys and wrong values are one clear error naming the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_yaml

MODEL_NAMES = (
    "tiny",
    "resnet18_fpn",
    "resnet34_fpn",
    "resnet50_fpn",
    "maskrcnn_resnet18_fpn",
    "maskrcnn_resnet34_fpn",
    "maskrcnn_resnet50_fpn",
    "goat",
)

MODEL_DEFAULTS: dict[str, Any] = {
    "name": "tiny",
    "base_checkpoint": None,  # local file; None -> the model starts from its random initialisation
    "min_size": 256,  # torchvision rescales every image so its short side is min_size ...
    "max_size": 256,  # ... and its long side at most max_size
    "score_thresh": 0.001,  # calibration needs the low-confidence detections
    "detections_per_img": None,  # None -> 1000 for goat (as the paper), 300 otherwise
    "nms_thresh": None,  # None -> 0.4 for goat (as the paper), 0.5 otherwise
    "trainable_layers": None,  # ResNet stages left trainable; None -> 4 for goat, 5 otherwise
}

TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "patience": 5,  # early stopping: epochs without a better validation mAP
    "optimizer": "adam",  # adam | adamw | sgd
    "lr": 0.001,
    "weight_decay": 0.0,
    "momentum": 0.9,  # sgd only
    "batch_size": 2,
    "schedule": "plateau",  # plateau | cosine
    "warmup_epochs": 0,  # linear warm-up from lr/10 over this many epochs (both schedules)
    "plateau_patience": 10,  # epochs without improvement before the lr is multiplied by plateau_factor
    "plateau_factor": 0.5,
    "freeze": "backbone",  # none | backbone | backbone+rpn
    "augment": True,
    "augment_p": 0.3,  # probability of each augmentation (as the paper)
    "seed": 42,
    "val_max_dets": 100,  # detections per image in the validation mAP (as the paper)
    "amp": True,  # mixed precision on GPU (ignored on CPU)
}

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("plateau", "cosine")
FREEZE = ("none", "backbone", "backbone+rpn")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _check(cond: bool, problem: str, file: Any, item: str) -> None:
    if not cond:
        raise UserError(problem, file, item)


def validate_training(values: dict[str, Any], file: Any = None, section: str = "training") -> dict[str, Any]:
    """Defaults merged with ``values``; raises UserError on an unknown key or a bad value."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("must be a mapping", file, section)
    unknown = sorted(set(values) - set(TRAINING_DEFAULTS))
    if unknown:
        raise UserError(f"unknown key(s) {unknown}; known: {sorted(TRAINING_DEFAULTS)}", file, section)
    out = {**TRAINING_DEFAULTS, **values}
    # freeze: the paper's search space says true/false; accept those as backbone/none.
    if isinstance(out["freeze"], bool):
        out["freeze"] = "backbone" if out["freeze"] else "none"
    key = lambda k: f"{section}.{k}"  # noqa: E731
    for k in ("epochs", "batch_size"):
        _check(_is_int(out[k]) and out[k] >= 1, f"must be an integer >= 1, got {out[k]!r}", file, key(k))
    for k in ("patience", "warmup_epochs", "plateau_patience", "seed", "val_max_dets"):
        _check(_is_int(out[k]) and out[k] >= 0, f"must be an integer >= 0, got {out[k]!r}", file, key(k))
    _check(_is_number(out["lr"]) and out["lr"] > 0, f"must be a number > 0, got {out['lr']!r}", file, key("lr"))
    for k in ("weight_decay", "momentum"):
        _check(_is_number(out[k]) and out[k] >= 0, f"must be a number >= 0, got {out[k]!r}", file, key(k))
    for k in ("plateau_factor", "augment_p"):
        _check(_is_number(out[k]) and 0 < out[k] <= 1, f"must be a number in (0, 1], got {out[k]!r}", file, key(k))
    _check(out["optimizer"] in OPTIMIZERS, f"must be one of {list(OPTIMIZERS)}, got {out['optimizer']!r}", file, key("optimizer"))
    _check(out["schedule"] in SCHEDULES, f"must be one of {list(SCHEDULES)}, got {out['schedule']!r}", file, key("schedule"))
    _check(out["freeze"] in FREEZE, f"must be one of {list(FREEZE)} (or true/false), got {out['freeze']!r}", file, key("freeze"))
    for k in ("augment", "amp"):
        _check(isinstance(out[k], bool), f"must be true or false, got {out[k]!r}", file, key(k))
    out["lr"] = float(out["lr"])
    return out


def validate_model(values: dict[str, Any], file: Any = None, section: str = "model") -> dict[str, Any]:
    """Defaults merged with ``values``; raises UserError on an unknown key or a bad value."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("must be a mapping", file, section)
    unknown = sorted(set(values) - set(MODEL_DEFAULTS))
    if unknown:
        raise UserError(f"unknown key(s) {unknown}; known: {sorted(MODEL_DEFAULTS)}", file, section)
    out = {**MODEL_DEFAULTS, **values}
    key = lambda k: f"{section}.{k}"  # noqa: E731
    _check(out["name"] in MODEL_NAMES, f"must be one of {list(MODEL_NAMES)}, got {out['name']!r}", file, key("name"))
    if out["detections_per_img"] is None:
        out["detections_per_img"] = 1000 if out["name"] == "goat" else 300
    for k in ("min_size", "max_size", "detections_per_img"):
        _check(_is_int(out[k]) and out[k] >= 1, f"must be an integer >= 1, got {out[k]!r}", file, key(k))
    _check(out["max_size"] >= out["min_size"], "must be >= min_size", file, key("max_size"))
    _check(_is_number(out["score_thresh"]) and 0 <= out["score_thresh"] < 1,
           f"must be a number in [0, 1), got {out['score_thresh']!r}", file, key("score_thresh"))
    if out["nms_thresh"] is None:
        out["nms_thresh"] = 0.4 if out["name"] == "goat" else 0.5
    _check(_is_number(out["nms_thresh"]) and 0 < out["nms_thresh"] <= 1,
           f"must be a number in (0, 1], got {out['nms_thresh']!r}", file, key("nms_thresh"))
    if out["trainable_layers"] is None:
        out["trainable_layers"] = 4 if out["name"] == "goat" else 5
    _check(_is_int(out["trainable_layers"]) and 0 <= out["trainable_layers"] <= 5,
           f"must be an integer in 0..5, got {out['trainable_layers']!r}", file, key("trainable_layers"))
    bc = out["base_checkpoint"]
    _check(bc is None or isinstance(bc, str), f"must be a file path or null, got {bc!r}", file, key("base_checkpoint"))
    return out


def read_training_config(path: str | Path) -> dict[str, Any]:
    """Read a training configuration file (as written by ``multirater sweep --config-dir``)."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError("must be a mapping with 'model' and 'training'", path)
    unknown = sorted(set(data) - {"model", "training", "config_id"})
    if unknown:
        raise UserError(f"unknown top-level key(s) {unknown}; known: ['config_id', 'model', 'training']", path)
    config_id = data.get("config_id", "default")
    if not isinstance(config_id, str) or not config_id:
        raise UserError(f"must be a non-empty string, got {config_id!r}", path, "config_id")
    # A relative base_checkpoint is relative to the working directory (where Snakemake runs jobs).
    model = validate_model(data.get("model"), path)
    return {"model": model, "training": validate_training(data.get("training"), path), "config_id": config_id}
