"""Raters who labelled different images: label sampling draws among the raters of each image, a
rater-specific model trains and validates on its rater's images, union takes whoever labelled the
image, and validation scores each rater on the validation images that rater labelled."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from multirater.core.errors import UserError
from multirater.data.dataset import load_dataset
from multirater.training import validation
from multirater.training.coverage import RaterCoverage
from multirater.training.inputs import read_splits
from multirater.training.job import prepare_job, strategy_images
from multirater.training.labels import Strategy, sampled_rater, training_sources
from multirater.training.settings import job_config

torch.set_num_threads(1)

# Who labelled what: a and b disjoint, c overlapping both, image 9 labelled by everyone.
LABELLED = {"a": [1, 2, 3, 4, 9], "b": [5, 6, 7, 8, 9], "c": [3, 4, 5, 6, 9]}
# Each rater draws one box at its own place, so a target says whose labels it holds.
BOX = {"a": [4, 4, 12, 12], "b": [30, 30, 14, 14], "c": [40, 8, 16, 10]}


@pytest.fixture
def partial(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, 11):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8), mode="L").save(root / "images" / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 64, "height": 64})
    cats = [{"id": 1, "name": "organoid"}]
    raters = {}
    for rater, ids in LABELLED.items():
        anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": BOX[rater]} for i in ids]
        coco = {"images": [images[i - 1] for i in ids], "annotations": anns, "categories": cats}
        (root / f"{rater}.json").write_text(json.dumps(coco))
        raters[rater] = f"{rater}.json"
    consensus = {"images": [images[9]], "annotations": [{"id": 1, "image_id": 10, "category_id": 1,
                                                          "bbox": [4, 4, 8, 8]}], "categories": cats}
    (root / "consensus.json").write_text(json.dumps(consensus))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "partial", "images": "images", "raters": raters,
                                                       "consensus": "consensus.json", "rater_coverage": "partial"}))
    (root / "splits.json").write_text(json.dumps({"train": [1, 2, 5, 6, 7, 9], "val": [3, 4, 8], "test": [10]}))
    return root


def setup(root, strategy, tmp_path, model=None, training=None):
    dataset = load_dataset(root / "dataset.yaml")
    splits = read_splits(root / "splits.json", dataset)
    config = job_config({"name": "tiny", "min_size": 64, "max_size": 64, **(model or {})},
                        {"epochs": 1, "augment": False, **(training or {})}, "test")
    job, _ = prepare_job(dataset, splits, strategy, config, tmp_path / "m", torch.device("cpu"))
    return job


def whose(target):
    """The rater whose box a target holds (hand-placed boxes, one per rater)."""
    x, y, x2, y2 = target["boxes"][0].tolist()
    return next(r for r, b in BOX.items() if [x, y, x2 - x, y2 - y] == b)


def test_coverage_says_who_labelled_what(partial):
    coverage = RaterCoverage(load_dataset(partial / "dataset.yaml"))
    assert coverage.raters_of(1) == ["a"] and coverage.raters_of(5) == ["b", "c"]
    assert coverage.raters_of(9) == ["a", "b", "c"] and coverage.raters_of(10) == []
    assert coverage.images_of("c") == [3, 4, 5, 6, 9]
    assert coverage.image_ids == list(range(1, 10))


def test_label_sampling_draws_only_among_the_raters_of_each_image(partial, tmp_path):
    job = setup(partial, Strategy("ls"), tmp_path)
    drawn = {i: set() for i in job.train_ids}
    for epoch in range(40):
        _, targets = job.batch(epoch, job.train_ids)
        for image_id, target in zip(job.train_ids, targets):
            drawn[image_id].add(whose(target))
    assert drawn == {1: {"a"}, 2: {"a"}, 5: {"b", "c"}, 6: {"b", "c"}, 7: {"b"}, 9: {"a", "b", "c"}}
    # where everyone labelled the image, the draw is the one among all raters (as before)
    for epoch in range(10):
        _, (target,) = job.batch(epoch, [9])
        assert whose(target) == ["a", "b", "c"][sampled_rater(42, epoch, 9, 3)]
    assert training_sources(Strategy("ls"), ["b", "c"], 42, 3, 5) == [["b", "c"][sampled_rater(42, 3, 5, 2)]]


def test_union_takes_everyone_who_labelled_the_image(partial, tmp_path):
    job = setup(partial, Strategy("union"), tmp_path)
    _, targets = job.batch(0, [1, 5, 9])
    assert [len(t["boxes"]) for t in targets] == [1, 2, 3]


def test_rater_specific_models_train_and_validate_on_their_raters_images(partial, tmp_path):
    coverage = RaterCoverage(load_dataset(partial / "dataset.yaml"))
    splits = {"train": [1, 2, 5, 6, 7, 9], "val": [3, 4, 8], "test": [10]}
    assert strategy_images(Strategy("rs", "a"), coverage, splits) == ([1, 2, 9], [3, 4])
    assert strategy_images(Strategy("rs", "b"), coverage, splits) == ([5, 6, 7, 9], [8])
    assert strategy_images(Strategy("rs", "c"), coverage, splits) == ([5, 6, 9], [3, 4])
    assert strategy_images(Strategy("ls"), coverage, splits) == (splits["train"], splits["val"])
    job = setup(partial, Strategy("rs", "b"), tmp_path)
    assert (job.train_ids, job.val_ids, job.steps_per_epoch) == ([5, 6, 7, 9], [8], 2)
    _, targets = job.batch(0, job.train_ids)
    assert {whose(t) for t in targets} == {"b"}
    with pytest.raises(UserError, match="labelled none of the val images"):
        strategy_images(Strategy("rs", "b"), coverage, {"train": [5], "val": [3], "test": []})


@pytest.mark.parametrize("strategy, scored", [
    (Strategy("ls"), [("a", 3), ("a", 4), ("b", 8), ("c", 3), ("c", 4)]),
    (Strategy("rs", "c"), [("c", 3), ("c", 4)]),
])
def test_validation_scores_each_rater_on_the_validation_images_it_labelled(partial, tmp_path, monkeypatch, strategy,
                                                                          scored):
    job = setup(partial, strategy, tmp_path)
    seen = {}

    def fake_map(ground_truth, detections, category_ids, max_dets):
        seen["ground_truth"] = ground_truth
        return {"map": 0.0, "ap50": 0.0}

    monkeypatch.setattr(validation, "coco_map", fake_map)
    validation.evaluate(job)
    expected = [(np.array([BOX[r]], dtype=np.float64), np.array([1])) for r, _ in scored]
    assert len(seen["ground_truth"]) == len(expected)
    for (boxes, labels), (want_boxes, want_labels) in zip(seen["ground_truth"], expected):
        np.testing.assert_array_equal(boxes, want_boxes)
        np.testing.assert_array_equal(labels, want_labels)


@pytest.mark.parametrize("strategy", ["ls", "rs-a", "rs-b"])
def test_training_runs_on_raters_with_different_images(partial, tmp_path, strategy):
    from multirater.cli import main

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"name": "tiny", "min_size": 64, "max_size": 64},
                                                     "training": {"epochs": 1}, "config_id": "x"}))
    assert main(["train", "--dataset", str(partial / "dataset.yaml"), "--splits", str(partial / "splits.json"),
                 "--strategy", strategy, "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m"),
                 "--device", "cpu", "--threads", "1"]) == 0
    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "ok"
