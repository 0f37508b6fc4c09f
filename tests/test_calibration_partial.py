"""Post-hoc calibration when raters labelled different images (partial rater coverage, as MultiOrg): the hard
target uses only the images its reference labelled, the soft target and the majority count the raters of each
image, and a reference that labelled none of the validation images is one clear error. Targets by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from multirater.calibration.fitting import fit_on_validation
from multirater.calibration.targets import hard_targets, soft_targets, targets
from multirater.cli import main
from multirater.core.errors import UserError
from multirater.data.dataset import load_dataset
from multirater.io.detections import Detections, parse_detections

torch.set_num_threads(1)

# Rater a labelled image 1 only, rater b images 2 and 3 only (disjoint); image 4 is the consensus's (test).
A_BOXES = {1: [[10, 10, 20, 20], [50, 50, 20, 20]]}
B_BOXES = {2: [[30, 30, 20, 20]], 3: []}  # b labelled image 3 and saw nothing there


def write_disjoint_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    images = {i: {"id": i, "file_name": f"im{i}.png", "width": 100, "height": 80} for i in (1, 2, 3, 4)}
    for im in images.values():
        Image.fromarray(np.zeros((80, 100), dtype=np.uint8), mode="L").save(root / "images" / im["file_name"])
    cats = [{"id": 1, "name": "organoid"}]

    def coco(boxes_by_image: dict[int, list]) -> dict:
        anns = [{"id": k, "image_id": i, "category_id": 1, "bbox": b}
                for k, (i, b) in enumerate(((i, b) for i, bs in boxes_by_image.items() for b in bs), start=1)]
        return {"images": [images[i] for i in boxes_by_image], "annotations": anns, "categories": cats}

    for name, boxes in (("a", A_BOXES), ("b", B_BOXES), ("consensus", {4: [[40, 40, 10, 10]]})):
        (root / f"{name}.json").write_text(json.dumps(coco(boxes)))
    manifest = root / "dataset.yaml"
    manifest.write_text(yaml.safe_dump({"images": "images", "consensus": "consensus.json",
                                        "raters": {"a": "a.json", "b": "b.json"}, "rater_coverage": "partial"}))
    return manifest


def val_detections(meta: dict | None = None, image_ids: tuple[int, ...] = (1, 2, 3)) -> Detections:
    records = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},  # d0: on a's first box
        {"image_id": 1, "category_id": 1, "bbox": [52, 50, 20, 20], "score": 0.6},  # d1: IoU 360 / 440 with a's 2nd
        {"image_id": 1, "category_id": 1, "bbox": [80, 10, 10, 10], "score": 0.2},  # d2: on nothing
        {"image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20], "score": 0.8},  # d3: on b's box
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.4},  # d4: on nothing
    ]
    records = [r for r in records if r["image_id"] in image_ids]
    return parse_detections({"image_ids": list(image_ids), "detections": records, "meta": meta or {}})


@pytest.fixture
def manifest(tmp_path):
    return write_disjoint_dataset(tmp_path / "data")


def test_hard_target_uses_only_the_images_its_reference_labelled(manifest):
    dataset = load_dataset(manifest)
    dets = val_detections()
    # against a: image 1 only (d0-d2); image 2 is b's, image 3 (no detections) b's too
    fit = targets(dets, dataset, "hard", "a", 0.5, "val.json")
    assert fit.used.tolist() == [True, True, True, False, False]
    assert fit.values.tolist() == [1, 1, 0]
    assert (fit.n_images, fit.n_images_total) == (1, 3)
    assert hard_targets(dets, dataset, "a", 0.5, "val.json").tolist() == [1, 1, 0]
    # against b: images 2 and 3 (d3, d4)
    fit = targets(dets, dataset, "hard", "b", 0.5, "val.json")
    assert fit.used.tolist() == [False, False, False, True, True]
    assert fit.values.tolist() == [1, 0] and (fit.n_images, fit.n_images_total) == (2, 3)
    # an rs-<rater> model's default reference is its rater
    fit = targets(val_detections({"strategy": "rs-b"}), dataset, "hard", None, 0.5, "val.json")
    assert fit.values.tolist() == [1, 0]


def test_soft_and_majority_count_only_the_raters_of_each_image(manifest):
    dataset = load_dataset(manifest)
    dets = val_detections()
    # one rater per image: the soft target is that rater's match (1/1 or 0/1), never halved by the absent rater
    assert soft_targets(dets, dataset, 0.5, "val.json").tolist() == [1, 1, 0, 1, 0]
    fit = targets(dets, dataset, "soft", None, 0.5, "val.json")
    assert fit.used.all() and (fit.n_images, fit.n_images_total) == (3, 3)
    # majority: more than half of the one rater who labelled the image
    fit = targets(dets, dataset, "hard", "majority", 0.5, "val.json")
    assert fit.used.all() and fit.values.tolist() == [1, 1, 0, 1, 0]


def test_fit_leaves_out_the_other_raters_images_and_says_so(manifest):
    dataset = load_dataset(manifest)
    dets = val_detections({"strategy": "rs-a"})
    cal = fit_on_validation(dets, dataset, "isotonic", "hard", 0.5, None, "val.json")
    fitted = cal.fitted
    assert fitted["reference"] == "a"
    assert (fitted["n_detections"], fitted["n_images"]) == (3, 1)
    assert (fitted["n_detections_left_out"], fitted["n_images_left_out"]) == (2, 2)
    assert fitted["mean_score"] == pytest.approx((0.9 + 0.6 + 0.2) / 3)
    assert fitted["mean_target"] == pytest.approx(2 / 3)
    # isotonic on (0.2, 0), (0.6, 1), (0.9, 1), linear between breakpoints: 0.4 -> 0.5. Had b's d4 (0.4, 0)
    # entered the fit, 0.4 would map to 0.
    assert cal.predict(np.array([0.2, 0.4, 0.6, 0.9])) == pytest.approx([0.0, 0.5, 1.0, 1.0], abs=1e-12)
    # detection-aware: box features of the used detections only (a mismatch would fail the fit)
    cal = fit_on_validation(dets, dataset, "detection-aware", "hard", 0.5, None, "val.json")
    assert cal.fitted["n_detections"] == 3
    # the soft target uses every image
    cal = fit_on_validation(dets, dataset, "isotonic", "soft", 0.5, None, "val.json")
    assert (cal.fitted["n_detections"], cal.fitted["n_images"], cal.fitted["n_images_left_out"]) == (5, 3, 0)


def test_no_validation_image_labelled_by_the_reference_is_one_clear_error(manifest):
    dataset = load_dataset(manifest)
    only_b = val_detections({"identity": {"strategy": "rs-a", "config_id": "0123abcd"}}, image_ids=(2, 3))
    with pytest.raises(UserError) as err:
        fit_on_validation(only_b, dataset, "logistic", "hard", 0.5, None, "val.json")
    message = str(err.value)
    assert message.startswith("val.json: rs-a: none of its 2 validation images is labelled by a (")
    assert str(dataset.coco_path("a")) in message
    ensemble = val_detections({"identity": {"kind": "rse", "size": 2, "members": []}})
    with pytest.raises(UserError, match=r"val.json: rse ensemble of 2: none of its 3 validation images is "
                                        r"labelled by consensus"):
        targets(ensemble, dataset, "hard", "consensus", 0.5, "val.json")
    # a reference that labelled images, but none with detections: nothing to fit either
    no_dets_on_a = parse_detections({"image_ids": [1, 2], "meta": {"strategy": "rs-a"}, "detections": [
        {"image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20], "score": 0.8}]})
    with pytest.raises(UserError, match=r"val.json: a labelled 1 of the validation images and none of them has a "
                                        r"detection"):
        fit_on_validation(no_dets_on_a, dataset, "logistic", "hard", 0.5, None, "val.json")


def test_an_image_labelled_by_nobody_is_not_a_validation_image(manifest):
    dataset = load_dataset(manifest)
    on_test = parse_detections({"image_ids": [1, 4], "detections": [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 4, "category_id": 1, "bbox": [40, 40, 10, 10], "score": 0.7}]})
    with pytest.raises(UserError, match=r"val.json: image 4 is not labelled by a, nor by any rater"):
        hard_targets(on_test, dataset, "a", 0.5, "val.json")


def test_calibrate_command_reports_what_it_left_out(manifest, tmp_path, capsys):
    dets = tmp_path / "val.json"
    dets.write_text(json.dumps(val_detections({"strategy": "rs-b"}).to_json()))
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--detections", str(dets), "--dataset", str(manifest), "--method", "isotonic",
                 "--target", "hard", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "isotonic on 2 detections, target hard vs b" in printed
    assert "fitted on the 2 image(s) b labelled; left out 3 detections on 1 image(s) it did not label" in printed
    fitted = json.loads(out.read_text())["fitted"]
    assert (fitted["n_detections"], fitted["n_detections_left_out"], fitted["mean_target"]) == (2, 3, 0.5)
