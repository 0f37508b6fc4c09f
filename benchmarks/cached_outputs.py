"""The cached outputs of a trained sweep, synthesised for bench_cache.py: each model's status.json and its
detections on the validation and test images, named and shaped as `multirater train` and `multirater predict`
write them (results/models/<strategy>/<config_id>/status.json, results/predictions/<split>/<strategy>/<id>.json).

A model's detections on an image look like a Faster R-CNN's at score floor 0.001 after box NMS: a confident,
slightly shifted box on most true objects (more of them, and more confident, the better the model), weaker boxes
around every object (shifted and resized), and many near-zero background boxes of organoid sizes; then
non-maximum suppression at the model's NMS IoU and the top n by score, n drawn per image from a range (the
paper's detector keeps up to 1000). Everything is deterministic from (seed, strategy, config id, split).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from multirater.core.files import write_json
from multirater.data.dataset import Dataset
from multirater.io.detections import Detections, write_detections

SCORE_FLOOR = 0.001  # the paper's model.score_thresh
BACKGROUND_SIDE_PX = (8.0, 96.0)  # background boxes: organoid-like sides, log-uniform
NEAR_BOXES_PER_OBJECT = 12  # mean number of weaker boxes around each true object (Poisson)


def _jitter(rng: np.random.Generator, centres: np.ndarray, sides: np.ndarray, shift: float,
            scale: float) -> np.ndarray:
    """Boxes (xyxy) around ``centres`` with sides ``sides``: centres moved by ``shift`` x side (normal), sides
    multiplied by exp(normal(0, ``scale``))."""
    centres = centres + rng.normal(0.0, shift, centres.shape) * sides
    sides = sides * np.exp(rng.normal(0.0, scale, sides.shape))
    return np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)


def image_detections(rng: np.random.Generator, truth_xywh: np.ndarray, width: int, height: int, keep: int,
                     quality: float, nms_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """(boxes xywh, scores by decreasing score) of one model on one image with true boxes ``truth_xywh``."""
    truth = np.asarray(truth_xywh, dtype=np.float64).reshape(-1, 4)
    centres, sides = truth[:, :2] + truth[:, 2:] / 2, truth[:, 2:]
    found = rng.random(len(truth)) < quality
    hits = _jitter(rng, centres[found], sides[found], shift=0.04, scale=0.06)
    hit_scores = rng.beta(2.0 + 6.0 * quality, 1.5, len(hits))
    around = np.repeat(np.arange(len(truth)), rng.poisson(NEAR_BOXES_PER_OBJECT, len(truth)))
    near = _jitter(rng, centres[around], sides[around], shift=0.35, scale=0.45)
    near_scores = rng.beta(1.0, 8.0, len(near))
    n_background = 2 * keep  # NMS leaves about 70 % of them at most: enough to reach `keep`
    side = np.exp(rng.uniform(*np.log(BACKGROUND_SIDE_PX), n_background))
    aspect = np.exp(rng.normal(0.0, 0.3, n_background))
    background = _jitter(rng, rng.uniform((0, 0), (width, height), (n_background, 2)),
                         np.stack([side * aspect, side / aspect], axis=1), shift=0.0, scale=0.0)
    background_scores = rng.beta(0.5, 40.0, n_background)
    boxes = np.concatenate([hits, near, background])
    boxes = np.clip(boxes, 0.0, [width, height, width, height])
    scores = np.clip(np.concatenate([hit_scores, near_scores, background_scores]), SCORE_FLOOR, 1.0)
    visible = (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
    boxes, scores = boxes[visible], scores[visible]
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores), nms_iou).numpy()[:keep]
    boxes, scores = boxes[kept], scores[kept]
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1), scores


def _truth(dataset: Dataset, split: str, strategy: str, image_id: int) -> np.ndarray:
    """The boxes a model's detections gather around: consensus on test images, the strategy's rater (or every
    rater, for label sampling) on validation images."""
    if split == "test":
        return dataset.boxes("consensus", image_id)
    raters = [strategy[len("rs-"):]] if strategy.startswith("rs-") else dataset.raters_of(image_id)
    return np.concatenate([dataset.boxes(r, image_id) for r in raters if r in dataset.raters_of(image_id)]
                          or [np.zeros((0, 4))])


def model_detections(dataset: Dataset, image_ids: list[int], split: str, strategy: str, quality: float,
                     detections_per_image: tuple[int, int], nms_iou: float,
                     rng: np.random.Generator, meta: dict) -> Detections:
    """One model's detections file on ``image_ids`` of ``split``."""
    category = int(dataset.categories[0]["id"])
    columns: dict[str, list[np.ndarray]] = {"image_id": [], "boxes": [], "scores": []}
    for image_id in image_ids:
        record = dataset.images[image_id]
        keep = int(rng.integers(detections_per_image[0], detections_per_image[1] + 1))
        boxes, scores = image_detections(rng, _truth(dataset, split, strategy, image_id), record.width,
                                         record.height, keep, quality, nms_iou)
        columns["image_id"].append(np.full(len(scores), image_id, dtype=np.int64))
        columns["boxes"].append(boxes)
        columns["scores"].append(scores)
    image_id = np.concatenate(columns["image_id"])
    return Detections(image_ids=np.unique(np.asarray(image_ids, dtype=np.int64)), image_id=image_id,
                      category_id=np.full(len(image_id), category, dtype=np.int64),
                      boxes=np.concatenate(columns["boxes"]), scores=np.concatenate(columns["scores"]), meta=meta)


def write_model_outputs(results: Path, dataset: Dataset, splits: dict[str, list[int]], strategy: str,
                        config_id: str, detections_per_image: tuple[int, int], nms_iou: float,
                        seed: int) -> int:
    """status.json (ok, a validation mAP that grows with the model's quality) and the val and test detections
    of one model, as the workflow names them; returns the number of detections written."""
    strategy_key = sum(strategy.encode())  # a stable number per strategy name
    rng = np.random.default_rng([seed, strategy_key, int(config_id, 16)])
    quality = float(rng.uniform(0.55, 0.95))
    best_epoch = int(rng.integers(5, 120))
    model_dir = results / "models" / strategy / config_id
    write_json(model_dir / "status.json", {
        "status": "ok", "strategy": strategy, "config_id": config_id, "epoch": min(best_epoch + 25, 150),
        "best_epoch": best_epoch, "best_val_map": round(0.1 + 0.4 * quality + float(rng.normal(0, 0.02)), 6),
        "message": "",
    })
    written = 0
    for index, split in enumerate(("val", "test")):
        meta = {"model": str(model_dir), "strategy": strategy, "config_id": config_id, "status": "ok",
                "identity": {"strategy": strategy, "config_id": config_id}, "images": split, "epoch": best_epoch}
        split_rng = np.random.default_rng([seed, strategy_key, int(config_id, 16), index])
        detections = model_detections(dataset, [int(i) for i in splits[split]], split, strategy, quality,
                                      detections_per_image, nms_iou, split_rng, meta)
        write_detections(results / "predictions" / split / strategy / f"{config_id}.json", detections)
        written += len(detections)
    return written


def read_splits_file(path: Path) -> dict[str, list[int]]:
    """splits.json as written by `multirater split`."""
    return json.loads(Path(path).read_text())
