"""Prediction: detections files listing every image, matching the model's own output, for ok and
failed models, on val/test or a folder."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from multirater.cli import main
from multirater.data.dataset import load_dataset, load_image
from multirater.io.detections import read_detections
from multirater.training.prediction import load_trained_model
from multirater.data.synthetic import generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    manifest = generate(root / "ds", seed=3, images=8, consensus_images=2, raters=2, size=128)
    (root / "splits.json").write_text(json.dumps(
        {"seed": 0, "val_fraction": 0.25, "train": [1, 2, 3, 4, 5, 6], "val": [7, 8], "test": [9, 10]}))
    (root / "c.yaml").write_text(yaml.safe_dump({
        "model": {"name": "tiny", "min_size": 128, "max_size": 128, "score_thresh": 0.0},
        "training": {"epochs": 2, "freeze": "none", "lr": 0.002}, "config_id": "abc12345"}))
    assert main(["train", "--dataset", str(manifest), "--splits", str(root / "splits.json"), "--strategy", "rs-rater1",
                 "--config", str(root / "c.yaml"), "--out", str(root / "model"), "--device", "cpu", "--threads", "1"]) == 0
    return root, manifest


def predict(root, manifest, images, out, *extra):
    return main(["predict", "--model", str(root / "model"), "--dataset", str(manifest), "--splits",
                 str(root / "splits.json"), "--images", images, "--out", str(out), "--device", "cpu", *extra])


def test_predictions_are_the_models_output_in_coco_xywh(trained, tmp_path):
    root, manifest = trained
    assert predict(root, manifest, "test", tmp_path / "p.json") == 0
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["format"] == "multirater-detections" and data["image_ids"] == [9, 10]
    meta = data["meta"]
    assert meta["status"] == "ok" and meta["strategy"] == "rs-rater1" and meta["config_id"] == "abc12345"
    assert meta["model"] == str(root / "model")
    assert meta["identity"] == {"strategy": "rs-rater1", "config_id": "abc12345"}  # the identity contract
    dets = read_detections(tmp_path / "p.json")
    assert len(dets) > 0 and set(dets.category_id) == {1}

    model, _ = load_trained_model(root / "model" / "best.pt", torch.device("cpu"))
    dataset = load_dataset(manifest)
    for image_id in (9, 10):
        pixels = load_image(dataset.images[image_id].path)
        with torch.no_grad():
            out = model([torch.from_numpy(pixels.transpose(2, 0, 1).copy())])[0]
        xyxy = out["boxes"].numpy().astype(np.float64)
        expected = np.stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1)
        mine = dets.image_id == image_id
        np.testing.assert_allclose(dets.boxes[mine], expected, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(dets.scores[mine], out["scores"].numpy(), rtol=1e-6)


def test_batch_size_does_not_change_predictions(trained, tmp_path):
    root, manifest = trained
    assert predict(root, manifest, "val", tmp_path / "b1.json", "--batch-size", "1") == 0
    assert predict(root, manifest, "val", tmp_path / "b2.json", "--batch-size", "2") == 0
    a, b = read_detections(tmp_path / "b1.json"), read_detections(tmp_path / "b2.json")
    assert list(a.image_ids) == list(b.image_ids) == [7, 8]
    assert len(a) == len(b)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_several_splits_in_one_call_equal_one_call_per_split(trained, tmp_path):
    root, manifest = trained
    assert main(["predict", "--model", str(root / "model"), "--dataset", str(manifest), "--splits",
                 str(root / "splits.json"), "--images", "val", "test", "--out", str(tmp_path / "v.json"),
                 str(tmp_path / "t.json"), "--device", "cpu"]) == 0
    for split, both in (("val", "v.json"), ("test", "t.json")):
        assert predict(root, manifest, split, tmp_path / f"alone_{split}.json") == 0
        assert (json.loads((tmp_path / both).read_text())
                == json.loads((tmp_path / f"alone_{split}.json").read_text())), split


@pytest.mark.parametrize("images, outs, problem", [
    (["val", "test"], ["v.json"], "needs one distinct file per --images (2), got 1"),
    (["val", "test"], ["v.json", "v.json"], "needs one distinct file per --images (2), got 2"),
    (["val", "nowhere"], ["v.json", "n.json"], "must be train, val, test or a folder of images"),
])
def test_a_bad_pair_of_images_and_outputs_writes_nothing(trained, tmp_path, capsys, images, outs, problem):
    root, manifest = trained
    assert main(["predict", "--model", str(root / "model"), "--dataset", str(manifest), "--splits",
                 str(root / "splits.json"), "--images", *images, "--out", *(str(tmp_path / o) for o in outs),
                 "--device", "cpu"]) != 0
    assert problem in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".json"]


def test_non_ok_model_gets_an_empty_file_listing_every_image(trained, tmp_path):
    root, manifest = trained
    model = tmp_path / "model"
    model.mkdir()
    (model / "status.json").write_text(json.dumps(
        {"status": "diverged", "strategy": "ls", "config_id": "deadbeef", "epoch": 2, "best_epoch": 1,
         "best_val_map": 0.1, "message": "non-finite loss"}))
    rc = main(["predict", "--model", str(model), "--dataset", str(manifest), "--splits", str(root / "splits.json"),
               "--images", "val", "--out", str(tmp_path / "p.json"), "--device", "cpu"])
    assert rc == 0
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["image_ids"] == [7, 8] and data["detections"] == []
    assert data["meta"]["status"] == "diverged" and data["meta"]["config_id"] == "deadbeef"
    assert data["meta"]["identity"] == {"strategy": "ls", "config_id": "deadbeef"}


def test_folder_of_images_keeps_known_ids_and_numbers_new_ones(trained, tmp_path):
    root, manifest = trained
    folder = tmp_path / "imgs"
    folder.mkdir()
    dataset = load_dataset(manifest)
    shutil.copy(dataset.images[9].path, folder / "a.png")
    shutil.copy(dataset.images[9].path, folder / "b.png")
    assert main(["predict", "--model", str(root / "model"), "--images", str(folder), "--out",
                 str(tmp_path / "p.json"), "--device", "cpu"]) == 0
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["image_ids"] == [1, 2]
    assert data["meta"]["file_names"] == {"1": "a.png", "2": "b.png"}
    by_image = {i: [d for d in data["detections"] if d["image_id"] == i] for i in (1, 2)}
    assert by_image[1] and [d["bbox"] for d in by_image[1]] == [d["bbox"] for d in by_image[2]]


def test_an_image_too_small_for_the_detectors_is_skipped_not_predicted(trained, tmp_path, capsys):
    from PIL import Image

    root, manifest = trained
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(load_dataset(manifest).images[9].path, folder / "a.png")
    # a thumbnail: the model would run on it, blown up to min_size, and find shapes that are not there
    Image.fromarray(np.full((24, 40), 128, dtype=np.uint8), mode="L").save(folder / "thumb.png")
    assert main(["predict", "--model", str(root / "model"), "--images", str(folder), "--out",
                 str(tmp_path / "p.json"), "--device", "cpu"]) == 0
    assert "skipped thumb.png: image is 40x24 px, smaller than the 32 px a side" in capsys.readouterr().out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["image_ids"] == [1] and {d["image_id"] for d in data["detections"]} == {1}
    assert data["meta"]["file_names"] == {"1": "a.png"}
    assert data["meta"]["skipped_images"] == {
        "thumb.png": "image is 40x24 px, smaller than the 32 px a side the detectors can use"}
    # nothing usable at all: one error, no output
    (folder / "a.png").unlink()
    assert main(["predict", "--model", str(root / "model"), "--images", str(folder), "--out",
                 str(tmp_path / "q.json"), "--device", "cpu"]) == 2
    assert "--images: every image is too small for the detectors (1 skipped)" in capsys.readouterr().err
    assert not (tmp_path / "q.json").exists()


def test_missing_model_is_a_clear_error_and_writes_nothing(trained, tmp_path, capsys):
    root, manifest = trained
    rc = main(["predict", "--model", str(tmp_path / "nope"), "--dataset", str(manifest), "--splits",
               str(root / "splits.json"), "--images", "val", "--out", str(tmp_path / "p.json"), "--device", "cpu"])
    assert rc == 2
    assert "status.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


# ----------------------------------------------------------------------------- tiling


def tiled_copy(root, tmp_path, tile_size, tile_overlap):
    """A copy of the trained model folder whose checkpoint says it was trained with tiling."""
    from multirater.training.checkpoints import read_checkpoint, save_checkpoint

    folder = tmp_path / f"tiled{tile_size}"
    shutil.copytree(root / "model", folder)
    checkpoint = read_checkpoint(folder / "best.pt")
    checkpoint["meta"]["model_settings"].update(tile_size=tile_size, tile_overlap=tile_overlap, tile_min_visible=0.5)
    save_checkpoint(folder / "best.pt", checkpoint)
    return folder


def test_tiling_leaves_images_no_larger_than_the_tile_as_they_were(trained, tmp_path):
    root, manifest = trained
    tiled = tiled_copy(root, tmp_path, 128, 32)  # the images are 128 px: one window each, the whole image
    for model, out in ((root / "model", "whole.json"), (tiled, "tiled.json")):
        assert main(["predict", "--model", str(model), "--dataset", str(manifest), "--splits", str(root / "splits.json"),
                     "--images", "test", "--out", str(tmp_path / out), "--device", "cpu", "--batch-size", "1"]) == 0
    whole, tiled_out = (json.loads((tmp_path / n).read_text()) for n in ("whole.json", "tiled.json"))
    assert whole["detections"] and tiled_out["detections"] == whole["detections"]


def test_a_large_16_bit_tiff_is_predicted_window_by_window(trained, tmp_path):
    import tifffile

    from multirater.training.prediction import detect
    from multirater.training.tiling import detect_tiled, tiles

    root, manifest = trained
    dataset = load_dataset(manifest)
    grey = [load_image(dataset.images[i].path)[:, :, 0] for i in (9, 10, 1, 2, 3, 4)]
    mosaic = np.round(np.block([grey[:3], grey[3:]]) * 65535).astype(np.uint16)  # 256 x 384 px
    folder = tmp_path / "large"
    folder.mkdir()
    tifffile.imwrite(folder / "mosaic.tif", mosaic, compression="zlib", rowsperstrip=16)
    tiled = tiled_copy(root, tmp_path, 128, 48)
    assert main(["predict", "--model", str(tiled), "--images", str(folder), "--out", str(tmp_path / "p.json"),
                 "--device", "cpu", "--batch-size", "3"]) == 0
    dets = read_detections(tmp_path / "p.json")
    assert len(tiles(384, 256, 128, 48)) == 15 and len(dets) > 0
    x1, y1 = dets.boxes[:, 0] + dets.boxes[:, 2], dets.boxes[:, 1] + dets.boxes[:, 3]
    assert dets.boxes[:, :2].min() >= 0 and x1.max() <= 384 and y1.max() <= 256
    # The same as the model on windows of the image decoded whole (16 bit over its full range):
    # reading the file window by window changes nothing.
    model, _ = load_trained_model(tiled / "best.pt", torch.device("cpu"))
    pixels = torch.from_numpy((mosaic.astype(np.float32) / 65535.0)[None].repeat(3, axis=0))
    boxes, scores, _ = detect_tiled(lambda w: detect(model, w, 3, torch.device("cpu")),
                                    lambda w: pixels[:, w[1]:w[3], w[0]:w[2]], 384, 256, 128, 48, 3)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    np.testing.assert_array_equal(dets.boxes, xywh)
    np.testing.assert_array_equal(dets.scores, np.clip(scores.astype(np.float64), 0, 1))
