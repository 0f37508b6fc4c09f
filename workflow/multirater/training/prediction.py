"""Batched inference: a trained model folder -> a detections file listing every image predicted on.

A model whose ``status.json`` is not ``ok`` gets an empty detections file (all images listed,
``meta.status`` set), so downstream rules still find their inputs and selection skips it.
Either way ``meta.identity`` says which model it is: ``{"strategy", "config_id"}``.
A model trained with ``model.tile_size`` predicts images larger than the tile in overlapping windows,
each object once (:mod:`multirater.training.tiling`), reading one window at a time where the file
allows (:mod:`multirater.training.image_windows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multirater.core.errors import UserError
from multirater.core.files import read_json
from multirater.data.dataset import IMAGE_SUFFIXES, Dataset, load_image
from multirater.data.images import image_size, too_small_problem
from multirater.io.detections import Detections, write_detections
from multirater.training.checkpoints import read_checkpoint
from multirater.training.image_windows import open_windows
from multirater.training.models import build_model
from multirater.training.tiling import Tile, Window, detect_tiled


@torch.no_grad()
def detect(
    model: torch.nn.Module, images: list[torch.Tensor], batch_size: int, device: torch.device, amp: bool = False
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes xyxy, scores, labels) per image, in batches of ``batch_size``."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = [im.to(device, non_blocking=True) for im in images[start:start + batch_size]]
        with torch.autocast(device.type, enabled=amp):
            results = model(batch)
        for r in results:
            out.append((r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy(), r["labels"].cpu().numpy()))
    return out


def detect_large(model: torch.nn.Module, read_window: Callable[[Window], torch.Tensor], width: int, height: int,
                 model_settings: dict[str, Any], batch_size: int, device: torch.device,
                 amp: bool = False, only: list[Tile] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes xyxy, scores, labels) of one image predicted in overlapping windows of
    ``model_settings['tile_size']`` (:mod:`multirater.training.tiling`), ``batch_size`` windows at a time
    (``only`` these windows of the grid, when given)."""
    return detect_tiled(lambda windows: detect(model, windows, batch_size, device, amp), read_window, width, height,
                        model_settings["tile_size"], model_settings["tile_overlap"], batch_size, only)


def _detect_files(model: torch.nn.Module, model_settings: dict[str, Any], chunk: list[int], paths: dict[int, Path],
                  batch_size: int, device: torch.device, amp: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Detections on a batch of image files: whole images, or window by window when tiling is on
    (memory then bounded by ``batch_size`` windows where the file format allows, see image_windows)."""
    if model_settings.get("tile_size") is None:
        images = [torch.from_numpy(np.ascontiguousarray(load_image(paths[i]).transpose(2, 0, 1))) for i in chunk]
        return detect(model, images, batch_size, device, amp)
    found = []
    for image_id in chunk:
        reader = open_windows(paths[image_id])
        try:
            found.append(detect_large(model, reader.read, reader.width, reader.height, model_settings, batch_size,
                                      device, amp))
        finally:
            reader.close()
    return found


def to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) -> COCO (x, y, w, h), float64."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def load_trained_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model from one of our checkpoints (``best.pt``) and its metadata."""
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or "meta" not in ckpt or "model" not in ckpt:
        raise UserError("not a multirater checkpoint (no 'meta'/'model'); train it with `multirater train`", path)
    meta = ckpt["meta"]
    model = build_model(meta["model_settings"], meta["num_classes"], meta["masks"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UserError(f"weights do not fit the model it names: {str(exc).splitlines()[0]}", path) from None
    return model.to(device).eval(), meta


def split_images(split: str, dataset: Dataset, splits: dict[str, Any]) -> tuple[list[int], dict[int, Path]]:
    """Image ids and paths of one split (``train``, ``val``, ``test``) of splits.json."""
    ids = [int(i) for i in splits[split]]
    return ids, {i: dataset.images[i].path for i in ids}


def folder_images(folder: str | Path, dataset: Dataset | None) -> tuple[list[int], dict[int, Path]]:
    """Image ids and paths of a folder of images: those the dataset knows keep their ids, the others
    are numbered after the dataset's (by file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("no such folder of images", folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder", folder)
    known = {rec.path.resolve(): rec.id for rec in dataset.images.values()} if dataset is not None else {}
    next_id = max(known.values(), default=0) + 1
    paths: dict[int, Path] = {}
    for p in files:
        image_id = known.get(p.resolve())
        if image_id is None:
            image_id, next_id = next_id, next_id + 1
        paths[image_id] = p
    return sorted(paths), paths


def usable_images(image_ids: list[int], paths: dict[int, Path]) -> tuple[list[int], dict[str, str]]:
    """The images of a folder the model can use, and those it cannot (file name -> why), from their headers.

    An image too small for the detectors (``data.images.MIN_IMAGE_SIDE_PX``) is skipped: it gets no detections,
    and is not listed among the images predicted on, so no count of zero is reported for it either.
    """
    kept, skipped = [], {}
    for image_id in image_ids:
        try:
            width, height = image_size(paths[image_id])
        except Exception as exc:  # any decoder failure is the file's problem
            raise UserError(f"cannot read the image's size ({exc})", paths[image_id]) from None
        problem = too_small_problem(width, height)
        if problem is None:
            kept.append(image_id)
        else:
            skipped[paths[image_id].name] = problem
    return kept, skipped


@dataclass(frozen=True)
class ImageSet:
    """Images to predict (ids and files), the detections file to write, and what its meta adds."""

    image_ids: list[int]
    paths: dict[int, Path]
    out: str | Path
    extra_meta: dict[str, Any] = field(default_factory=dict)


def predict(model_dir: str | Path, image_sets: list[ImageSet], device: torch.device,
            batch_size: int = 4) -> list[Detections]:
    """Predict every image of each set and write its detections file (in overlapping windows when the
    model was trained with ``model.tile_size``); the model is loaded once for all the sets."""
    model_dir = Path(model_dir)
    status = read_json(model_dir / "status.json")
    if not isinstance(status, dict) or "status" not in status:
        raise UserError("missing key 'status'", model_dir / "status.json")
    meta: dict[str, Any] = {
        "model": str(model_dir),
        "strategy": status.get("strategy"),
        "config_id": status.get("config_id"),
        "status": status["status"],
        "identity": {"strategy": status.get("strategy"), "config_id": status.get("config_id")},
    }
    model, ckpt_meta = load_trained_model(model_dir / "best.pt", device) if status["status"] == "ok" else (None, {})
    if model is not None:
        meta["epoch"] = ckpt_meta.get("epoch")
    written = []
    for image_set in image_sets:
        set_meta = {**meta, **image_set.extra_meta}
        detections = (Detections.empty(image_set.image_ids, set_meta) if model is None else
                      _detections(model, ckpt_meta, image_set, device, batch_size, set_meta))
        write_detections(image_set.out, detections)
        written.append(detections)
    return written


def _detections(model: torch.nn.Module, ckpt_meta: dict[str, Any], image_set: ImageSet, device: torch.device,
                batch_size: int, meta: dict[str, Any]) -> Detections:
    image_ids, paths = image_set.image_ids, image_set.paths
    category_ids = np.asarray([0, *ckpt_meta["category_ids"]], dtype=np.int64)
    columns: dict[str, list[np.ndarray]] = {"image_id": [], "category_id": [], "boxes": [], "scores": []}
    amp = device.type == "cuda"
    model_settings = ckpt_meta["model_settings"]
    for start in range(0, len(image_ids), batch_size):
        chunk = image_ids[start:start + batch_size]
        for image_id, (boxes, scores, labels) in zip(chunk, _detect_files(model, model_settings, chunk, paths,
                                                                          batch_size, device, amp)):
            columns["image_id"].append(np.full(len(scores), image_id, dtype=np.int64))
            columns["category_id"].append(category_ids[labels.astype(np.int64)])
            columns["boxes"].append(to_xywh(boxes))
            columns["scores"].append(np.clip(scores.astype(np.float64), 0.0, 1.0))
    cat = lambda k, empty: np.concatenate(columns[k]) if columns[k] else empty  # noqa: E731
    return Detections(
        image_ids=np.unique(np.asarray(image_ids, dtype=np.int64)),
        image_id=cat("image_id", np.zeros(0, np.int64)),
        category_id=cat("category_id", np.zeros(0, np.int64)),
        boxes=cat("boxes", np.zeros((0, 4))),
        scores=cat("scores", np.zeros(0)),
        meta=meta,
    )
