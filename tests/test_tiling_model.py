"""Tiled prediction with a real detector: on an image small enough to predict whole, predicting it in
overlapping windows gives the same boxes (the issue's bar: >= 95% matched one-to-one at IoU 0.9).

A ResNet-18 FPN Faster R-CNN (FrozenBatchNorm2d, a fixed affine map: no statistics of the window, unlike the
``tiny`` model's GroupNorm) is trained briefly through the project's training job and epoch loop on
painted bright ellipses, then predicts a held-out 512 x 256 image through the project's prediction
path, whole and in two 384 x 256 windows. min_size 256 / max_size 512 make both enter the model at
scale 1.

Why 384 px windows: a box of this briefly trained model (random frozen backbone, heads trained for
seconds) depends on context far beyond its object. With 256 px windows and a 128 px overlap, 2-3 of
~20 boxes fell below IoU 0.9 on three of four trained models (85-90%; still so with a 224 px overlap
or 4000 RPN proposals kept per image), also boxes owned far from any window edge: it is the features
(the random ResNet's receptive field spans the window; FPN carries it to every level), not the window
rule. 384 px windows with a 256 px overlap agreed on every box of all four models.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from multirater.data.dataset import load_dataset
from multirater.data.writer import DatasetContent, coco_dict, write_dataset_folder
from multirater.training.job import prepare_job
from multirater.training.labels import Strategy
from multirater.training.loop import train_one_epoch
from multirater.training.prediction import _detect_files
from multirater.training.progress import Progress
from multirater.training.settings import job_config
from multirater.training.tiling import tiles

torch.set_num_threads(1)

TILE, OVERLAP = 384, 256  # windows at x 0 and 128 of the 512 px image (full height), cut at 256
HELD_OUT = (512, 256)  # width, height
TRAIN_IMAGES, TRAIN_SIZE, OBJECTS_PER_TRAIN_IMAGE = 16, 256, 10
EPOCHS, LR = 5, 2e-3
SCORE = 0.5
CPU = torch.device("cpu")


def paint(rng: np.random.Generator, width: int, height: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy dark image with ``n`` separate bright ellipses (28-38 px across, at least 8 px apart),
    and their tight boxes (xyxy, pixel edges)."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = 0.15 + 0.04 * rng.standard_normal((height, width))
    placed: list[tuple[float, float, float]] = []
    boxes = []
    for _ in range(2000):
        if len(placed) == n:
            break
        a, b = rng.uniform(14, 19, 2)
        cx, cy = rng.uniform(a + 2, width - a - 2), rng.uniform(b + 2, height - b - 2)
        if any(np.hypot(cx - x, cy - y) < max(a, b) + r + 8 for x, y, r in placed):
            continue
        inside = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1
        image[inside] = rng.uniform(0.6, 0.9) + 0.04 * rng.standard_normal(int(inside.sum()))
        ys, xs = np.nonzero(inside)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        placed.append((cx, cy, max(a, b)))
    assert len(placed) == n, "the scene is too crowded to place every ellipse"
    return np.clip(image, 0.0, 1.0), np.asarray(boxes, dtype=np.float64)


def write_scenes(root, sizes: list[tuple[int, int]], counts: list[int]):
    """A one-rater dataset of painted images (ids from 1); returns its manifest."""
    rng = np.random.default_rng(7)

    def build(image_dir):
        image_dir.mkdir()
        images, annotations = [], []
        for image_id, ((width, height), n) in enumerate(zip(sizes, counts), start=1):
            pixels, boxes = paint(rng, width, height, n)
            name = f"scene{image_id}.png"
            Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L").save(image_dir / name)
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for x0, y0, x1, y1 in boxes.tolist():
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        return DatasetContent(name="painted-ellipses", raters={"painter": coco_dict(images, annotations)}, consensus=None)

    return write_dataset_folder(root, build)


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """Train the detector, then predict the held-out image whole and tiled.

    Returns (painted boxes, untiled (boxes, scores), tiled (boxes, scores), the model, its settings)."""
    root = tmp_path_factory.mktemp("tiling_model")
    sizes = [(TRAIN_SIZE, TRAIN_SIZE)] * TRAIN_IMAGES + [HELD_OUT]
    manifest = write_scenes(root / "ds", sizes, [OBJECTS_PER_TRAIN_IMAGE] * TRAIN_IMAGES + [20])
    dataset = load_dataset(manifest)
    held = len(sizes)
    splits = {"train": list(range(1, held)), "val": [held], "test": []}
    # nms 0.3: a briefly trained head regresses loosely and NMS 0.5 leaves 2-3 offset boxes per object
    # whose survival differs with tiny feature changes; the painted objects never overlap, so 0.3 loses none.
    model = {"name": "resnet18_fpn", "min_size": 256, "max_size": 512, "nms_thresh": 0.3,
             "tile_size": TILE, "tile_overlap": OVERLAP}
    config = job_config(model, {"epochs": EPOCHS, "batch_size": 2, "freeze": "backbone", "patience": 0, "lr": LR}, "tiles")
    job, _ = prepare_job(dataset, splits, Strategy("ls"), config, root / "model", CPU)
    # 128 sampled RoIs per image instead of 512 (as the tiny model's 64): training only, 4x cheaper heads.
    job.model.roi_heads.fg_bg_sampler.batch_size_per_image = 128
    progress = Progress()
    for _ in range(EPOCHS):  # the loop's epochs without validation and checkpoints, which cost time here
        train_one_epoch(job, progress)
        progress.epoch, progress.step = progress.epoch + 1, 0
    paths = {held: dataset.images[held].path}
    (untiled_boxes, untiled_scores, _), = _detect_files(job.model, {**job.model_settings, "tile_size": None}, [held],
                                                        paths, 2, CPU, False)
    (tiled_boxes, tiled_scores, _), = _detect_files(job.model, job.model_settings, [held], paths, 2, CPU, False)
    painted = dataset.boxes("painter", held)
    painted[:, 2:] += painted[:, :2]
    return (painted, (untiled_boxes.astype(np.float64), untiled_scores), (tiled_boxes, tiled_scores),
            job.model, job.model_settings)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (xyxy)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def matched(a: np.ndarray, b: np.ndarray, threshold: float) -> int:
    """How many one-to-one pairs of boxes of ``a`` and ``b`` reach IoU >= threshold (maximum matching)."""
    if len(a) == 0 or len(b) == 0:
        return 0
    iou = iou_matrix(a, b)
    rows, cols = linear_sum_assignment(np.where(iou >= threshold, iou, 0.0), maximize=True)
    return int(np.sum(iou[rows, cols] >= threshold))


def test_hand_computed_iou_and_matching():
    # Two 10 x 10 boxes shifted by 1 px: intersection 9 x 10 = 90, union 110.
    assert iou_matrix([[0, 0, 10, 10]], [[1, 0, 11, 10]])[0, 0] == pytest.approx(90 / 110)
    # The greedy pair (0, 0) at IoU 1 would leave box 1 of a alone; one-to-one keeps two pairs at 0.8.
    a = [[0, 0, 10, 10], [20, 0, 30, 10]]
    b = [[2, 0, 10, 10], [20, 0, 28, 10], [50, 50, 60, 60]]
    assert matched(a, b, 0.8) == 2 and matched(a, b, 0.81) == 0 and matched(a, [], 0.5) == 0


def test_both_predictions_enter_the_model_at_scale_one(predictions):
    *_, model, settings = predictions
    grid = tiles(*HELD_OUT, settings["tile_size"], settings["tile_overlap"])
    assert [t.window for t in grid] == [(0, 0, 384, 256), (128, 0, 512, 256)]
    model.eval()
    for width, height in [HELD_OUT, (TILE, HELD_OUT[1])]:
        image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(width))
        resized, _ = model.transform([image])
        assert resized.image_sizes == [(height, width)]
        # pixels unchanged but for the normalisation: no resampling at scale 1
        mean, std = (torch.tensor(v).view(3, 1, 1) for v in (model.transform.image_mean, model.transform.image_std))
        torch.testing.assert_close(resized.tensors[0], (image - mean) / std)


def test_the_detector_learnt_the_painted_objects(predictions):
    painted, (untiled, scores), *_ = predictions
    confident = untiled[scores >= SCORE]
    assert len(painted) == 20
    assert matched(painted, confident, 0.5) >= 18  # at least 90% of the objects found
    assert abs(len(confident) - len(painted)) <= 3  # and few boxes besides


def test_tiled_and_untiled_predictions_agree(predictions):
    painted, (untiled, untiled_scores), (tiled, tiled_scores), *_ = predictions
    # The comparison means something only if objects lie across the windows' inner edges (x 128, 384) or
    # the cut between their owned regions (x 256).
    across = np.any([(painted[:, 0] < x) & (painted[:, 2] > x) for x in (128, 256, 384)], axis=0)
    assert across.sum() >= 2
    a, b = untiled[untiled_scores >= SCORE], tiled[tiled_scores >= SCORE]
    assert len(a) >= 15
    assert matched(a, b, 0.9) >= 0.95 * len(a)
    assert abs(len(a) - len(b)) <= max(1, round(0.05 * len(a)))
