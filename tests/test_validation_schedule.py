"""Validation during training (multirater.training.validation): on the windows that hold objects, every
``val_every`` epochs, with patience and the plateau schedule still counted in epochs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from multirater.data.dataset import load_dataset
from multirater.training.job import prepare_job
from multirater.training.labels import Strategy
from multirater.training.loop import finish_epoch
from multirater.training.progress import Progress
from multirater.training.schedule import LearningRate
from multirater.training.settings import job_config, validate_training
from multirater.training.tiling import tiles
from multirater.training.validation import evaluate, object_tiles, validates, validation_detections

torch.set_num_threads(1)
CPU = torch.device("cpu")
# Two raters' boxes (xywh), all in the top-left corner of 256 px images: with 128 px windows (overlap 32) only
# the first window of the 3 x 3 grid owns their centres (its owned region ends at x, y = 112).
BOXES = {"a": [[10, 12, 30, 28], [60, 50, 24, 30]], "b": [[12, 10, 28, 30], [70, 20, 20, 20]]}


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    root = tmp_path_factory.mktemp("corner")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, 5):
        pixels = rng.integers(0, 60, (256, 256), dtype=np.uint8)
        for x, y, w, h in BOXES["a"]:
            pixels[y:y + h, x:x + w] = 220
        Image.fromarray(pixels, mode="L").save(root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 256, "height": 256})
    cats = [{"id": 1, "name": "organoid"}]
    for rater, boxes in BOXES.items():
        anns = [{"id": k * 10 + j, "image_id": k, "category_id": 1, "bbox": b}
                for k in range(1, 5) for j, b in enumerate(boxes)]
        (root / f"{rater}.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "corner", "images": "images",
                                                       "raters": {"a": "a.json", "b": "b.json"}}))
    return load_dataset(root / "dataset.yaml")


def corner_job(dataset, tmp_path, training=None):
    config = job_config({"name": "tiny", "min_size": 128, "max_size": 128, "tile_size": 128, "tile_overlap": 32,
                         "score_thresh": 0.001}, {"epochs": 3, "augment": False, **(training or {})}, "v")
    job, _ = prepare_job(dataset, {"train": [1, 2], "val": [3, 4], "test": []}, Strategy("ls"), config,
                         tmp_path / "m", CPU)
    return job


def test_only_windows_owning_a_validation_box_are_predicted_and_their_detections_are_the_full_grids(corner, tmp_path):
    job = corner_job(corner, tmp_path)
    grid = tiles(256, 256, 128, 32)
    assert len(grid) == 9 and [t.window for t in object_tiles(job, 3)] == [(0, 0, 128, 128)]
    # every validation box's centre lies in the owned region of a predicted window (hand-placed: all < 112)
    centres = np.array([[x + w / 2, y + h / 2] for boxes in BOXES.values() for x, y, w, h in boxes])
    assert (centres < 112).all()

    objects = validation_detections(job)
    job.settings = {**job.settings, "val_windows": "all"}
    every = validation_detections(job)
    first = grid[0]
    for (boxes, scores, labels), (all_boxes, all_scores, all_labels) in zip(objects, every):
        assert len(all_boxes) > len(boxes) > 0  # the untrained model finds things everywhere
        mine = first.owns(all_boxes)
        # the same window through the same model; batched with other windows or not (last bits only)
        np.testing.assert_allclose(boxes, all_boxes[mine], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(scores, all_scores[mine], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(labels, all_labels[mine])
    # what objects leaves out are false positives only: the mAP cannot be lower
    mean_all = evaluate(job)["map"]
    job.settings = {**job.settings, "val_windows": "objects"}
    assert evaluate(job)["map"] >= mean_all


def test_val_every_validates_every_kth_epoch_and_the_last(corner, tmp_path):
    from multirater.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "tiny", "min_size": 128, "max_size": 128},
                                      "training": {"epochs": 5, "val_every": 2, "patience": 0, "augment": False},
                                      "config_id": "every"}))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": [1, 2], "val": [3, 4], "test": []}))
    assert main(["train", "--dataset", str(corner.manifest), "--splits", str(splits), "--strategy", "ls",
                 "--config", str(config), "--out", str(tmp_path / "m"), "--device", "cpu", "--threads", "1"]) == 0
    with open(tmp_path / "m" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    validated = [int(r["epoch"]) for r in rows if r["val_map"] != ""]
    assert validated == [2, 4, 5] and [validates({"val_every": 2, "epochs": 5}, e) for e in range(5)] == [
        False, True, False, True, True]
    assert all(float(r["val_seconds"]) == 0 for r in rows if r["val_map"] == "")
    assert all(float(r["val_seconds"]) > 0 for r in rows if r["val_map"] != "")
    best = torch.load(tmp_path / "m" / "best.pt", weights_only=True)["meta"]["epoch"]
    assert best in validated


@pytest.mark.parametrize("val_every, maps, stops_after", [
    (1, [0.5, 0.4, 0.3, 0.2], 3),  # patience 2: two epochs without progress
    (2, [None, 0.5, None, 0.4, None, 0.3], 4),  # the best at 2; at 4, two epochs since: stop
    (3, [None, None, 0.5, None, None, 0.4, None, None, 0.6], 6),  # 3 epochs since the best >= 2 at epoch 6
])
def test_patience_counts_epochs_and_is_decided_at_validated_epochs(corner, tmp_path, val_every, maps, stops_after):
    job = corner_job(corner, tmp_path, {"epochs": 20, "patience": 2, "val_every": val_every})
    progress = Progress()
    for epoch, value in enumerate(maps, start=1):
        finish_epoch(job, progress, None if value is None else {"map": value, "ap50": value})
        if progress.done:
            break
    assert progress.epoch == stops_after and progress.done
    assert progress.best_epoch == 1 + maps.index(max(v for v in maps[:stops_after] if v is not None))


def test_plateau_patience_counts_the_epochs_between_validations():
    settings = validate_training({"schedule": "plateau", "plateau_patience": 3, "plateau_factor": 0.5, "lr": 1.0})
    every_epoch, every_second = LearningRate(settings, 1), LearningRate(settings, 1)
    for value in [0.5, 0.4, 0.4, 0.4, 0.4]:  # 4 epochs without progress > 3: halved at the 5th
        every_epoch.end_epoch(value)
    for value in [0.5, 0.4, 0.4]:  # validated at epochs 1, 3, 5: the same 4 epochs without progress
        every_second.end_epoch(value, 1 if value == 0.5 else 2)
    assert every_epoch.scale == every_second.scale == 0.5
