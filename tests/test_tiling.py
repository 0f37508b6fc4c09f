"""Tiling: prediction windows and the exactly-once rule, training crops and the cut-box rule, and
reading an image file one window at a time (8/16 bit, memory bounded by the window)."""

import tracemalloc

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from multirater.data.dataset import load_image
from multirater.training.image_windows import TiffWindows, WholeImage, open_windows
from multirater.training.tiling import axis_starts, crop_boxes, crop_window, detect_tiled, tiles

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- windows


def test_window_grid_hand_computed():
    # 600 x 400 px, tile 256, overlap 64: stride 192; the last window ends at the border.
    assert axis_starts(600, 256, 64) == [0, 192, 344]
    assert axis_starts(400, 256, 64) == [0, 144]
    assert axis_starts(256, 256, 64) == [0] and axis_starts(100, 256, 64) == [0]
    grid = tiles(600, 400, 256, 64)
    assert [t.window for t in grid] == [(0, 0, 256, 256), (192, 0, 448, 256), (344, 0, 600, 256),
                                        (0, 144, 256, 400), (192, 144, 448, 400), (344, 144, 600, 400)]
    # Owned regions cut each overlap in its middle: x at (192 + 256) / 2 and (344 + 448) / 2, y at (144 + 256) / 2.
    inf = np.inf
    assert [t.owned for t in grid] == [(-inf, -inf, 224, 200), (224, -inf, 396, 200), (396, -inf, inf, 200),
                                       (-inf, 200, 224, inf), (224, 200, 396, inf), (396, 200, inf, inf)]
    # An image no larger than the tile is one window, the whole image, owning everything.
    (whole,) = tiles(200, 120, 256, 64)
    assert whole.window == (0, 0, 200, 120) and whole.owned == (-inf, -inf, inf, inf)


def test_owned_regions_partition_the_image():
    grid = tiles(600, 400, 256, 64)
    rng = np.random.default_rng(0)
    centres = np.concatenate([rng.uniform(0, [600, 400], (5000, 2)),
                              [[224, 10], [396, 200], [0, 0], [599.9, 399.9]]])  # on the cuts too
    boxes = np.concatenate([centres - 1, centres + 1], axis=1)
    owners = np.stack([t.owns(boxes) for t in grid]).sum(axis=0)
    assert np.all(owners == 1)


def test_merge_rule_on_known_boxes():
    # Window 0 = [0, 256) and window 1 = [192, 448) (overlap 64, cut at 224) on a 448 x 100 image.
    grid = tiles(448, 100, 256, 64)
    assert [t.window for t in grid] == [(0, 0, 256, 100), (192, 0, 448, 100)]
    # A 40 px object at x 210..250 (centre 230): window 0 sees it whole, window 1 whole too.
    # One at x 236..276 (centre 256): window 0 sees only 236..256 (centre 246), window 1 all of it.
    seen = {0: np.array([[210.0, 10, 250, 50], [236, 60, 256, 90]]),  # by window x0, in window coordinates
            192: np.array([[18.0, 10, 58, 50], [44, 60, 84, 90]])}

    def detector(windows):  # each window's pixels hold its x0
        return [(seen[int(w[0, 0, 0])], np.array([0.9, 0.8]), np.array([1, 1])) for w in windows]

    boxes, scores, labels = detect_tiled(detector, lambda w: torch.full((3, w[3] - w[1], w[2] - w[0]), float(w[0])),
                                         448, 100, 256, 64, batch_size=1)
    # Centre 230 >= 224: window 1 keeps the first object; the cut view of the second (centre 246 >= 224)
    # is dropped by window 0 and the whole one (centre 256) kept by window 1.
    np.testing.assert_array_equal(boxes, [[210, 10, 250, 50], [236, 60, 276, 90]])
    np.testing.assert_array_equal(scores, [0.9, 0.8])


# A deterministic detector for the rule: connected components of the bright pixels of each window.
def blob_detector(windows):
    out = []
    for window in windows:
        bright = window[0].numpy() > 0.5
        components, _ = ndimage.label(bright)
        slices = ndimage.find_objects(components)
        boxes = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices], dtype=np.float32)
        scores = np.array([float(window[0].numpy()[s].mean()) for s in slices], dtype=np.float32)
        out.append((boxes.reshape(-1, 4), scores, np.ones(len(slices), dtype=np.int64)))
    return out


def painted_image(width, height, blobs):
    image = np.zeros((height, width), dtype=np.float32)
    for x0, y0, x1, y1 in blobs:
        image[y0:y1, x0:x1] = 1.0
    return torch.from_numpy(np.repeat(image[None], 3, axis=0))


def test_objects_straddling_tile_borders_are_detected_exactly_once_and_whole():
    # 600 x 400 px, tile 256, overlap 64: windows at x 0/192/344 (cuts at 224, 396) and y 0/144 (cut at 200).
    # Blobs across every window border, across two at once, centred on the cuts, and away from them;
    # none larger than the overlap.
    blobs = [(230, 20, 290, 60), (170, 80, 215, 120), (330, 20, 380, 60), (420, 80, 470, 120),
             (235, 170, 275, 230), (100, 230, 150, 280), (20, 120, 70, 160), (160, 240, 215, 290),
             (214, 300, 234, 320), (386, 190, 406, 210), (500, 300, 560, 350), (300, 330, 350, 380),
             (40, 20, 80, 60)]
    image = painted_image(600, 400, blobs)
    boxes, _, _ = detect_tiled(blob_detector, lambda w: image[:, w[1]:w[3], w[0]:w[2]], 600, 400, 256, 64, 4)
    assert sorted(map(tuple, boxes.tolist())) == sorted(blobs)


def test_tiled_and_untiled_predictions_agree_on_an_image_small_enough_for_both():
    rng = np.random.default_rng(1)
    blobs = []
    while len(blobs) < 40:  # 40 separate blobs of 10-40 px on a 512 x 384 image
        w, h = rng.integers(10, 41, 2)
        x0, y0 = int(rng.integers(0, 512 - w)), int(rng.integers(0, 384 - h))
        box = (x0, y0, x0 + int(w), y0 + int(h))
        if all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1] for b in blobs):
            blobs.append(box)
    image = painted_image(512, 384, blobs)
    (untiled, _, _), = blob_detector([image])
    tiled, _, _ = detect_tiled(blob_detector, lambda w: image[:, w[1]:w[3], w[0]:w[2]], 512, 384, 160, 48, 3)
    assert len(tiles(512, 384, 160, 48)) == 5 * 3  # x: 0, 112, 224, 336, 352; y: 0, 112, 224
    assert matched_at(tiled, untiled, 0.9) >= 0.95 * len(untiled) and len(tiled) == len(untiled) == 40


def matched_at(a, b, threshold):
    """One-to-one pairs of boxes (xyxy) with IoU >= threshold (maximum matching by total IoU)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter_w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = inter_w * inter_h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    iou = inter / (area(a)[:, None] + area(b)[None, :] - inter)
    rows, cols = linear_sum_assignment(np.where(iou >= threshold, iou, 0.0), maximize=True)
    return int(np.sum(iou[rows, cols] >= threshold))


# ----------------------------------------------------------------------------- training crops


def test_crop_rule_hand_computed():
    window = (100, 100, 356, 356)
    boxes = torch.tensor([
        [150.0, 150, 200, 200],  # inside: kept as it is
        [90, 120, 110, 140],  # half inside (200 of 400 px): kept, clipped
        [80, 120, 110, 140],  # a third inside: dropped
        [340, 340, 380, 380],  # 16 x 16 of 40 x 40 inside: dropped
        [0, 0, 50, 50],  # outside: dropped
        [300, 90, 320, 150],  # 50 of 60 rows inside: kept, clipped
    ])
    keep, clipped = crop_boxes(boxes, window, 0.5)
    assert keep.tolist() == [True, True, False, False, False, True]
    assert clipped.tolist() == [[50, 50, 100, 100], [0, 20, 10, 40], [200, 0, 220, 50]]
    keep, _ = crop_boxes(boxes, window, 0.3)
    assert keep.tolist() == [True, True, True, False, False, True]


def test_crop_positions_are_seeded_inside_the_image_and_change_with_the_epoch():
    first = [crop_window(42, epoch, 7, 600, 400, 256) for epoch in range(30)]
    assert first == [crop_window(42, epoch, 7, 600, 400, 256) for epoch in range(30)]  # a resumed run replays them
    assert len(set(first)) > 20
    for x0, y0, x1, y1 in first:
        assert 0 <= x0 and x1 <= 600 and 0 <= y0 and y1 <= 400 and (x1 - x0, y1 - y0) == (256, 256)
    assert crop_window(42, 0, 8, 600, 400, 256) != crop_window(42, 0, 7, 600, 400, 256)
    assert crop_window(42, 0, 7, 256, 256, 256) is None  # fits: the whole image
    assert crop_window(42, 0, 7, 600, 200, 256)[1::2] == (0, 200)  # the short side is kept whole


def test_crop_masks_are_the_crop_of_the_full_masks():
    from multirater.training.data import polygons_to_masks, window_masks

    polygon = [[90.0, 120.0, 130.5, 118.0, 140.0, 160.2, 95.0, 170.0]]
    disk = np.zeros((300, 400), dtype=np.uint8)
    disk[(np.arange(300)[:, None] - 110) ** 2 + (np.arange(400)[None, :] - 105) ** 2 < 30 ** 2] = 1
    flat = disk.flatten(order="F")  # COCO's uncompressed RLE: run lengths column by column, zeros first
    changes = np.flatnonzero(np.diff(flat)) + 1
    rle = {"size": [300, 400], "counts": np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()}
    window = (100, 100, 228, 228)
    full = polygons_to_masks([polygon, rle], 300, 400)[:, 100:228, 100:228]
    cropped = window_masks([polygon, rle], window, 300, 400)
    assert torch.equal(cropped[1], torch.from_numpy(disk[100:228, 100:228]))  # RLE: exactly the crop
    overlap = (cropped[0] & full[0]).sum() / (cropped[0] | full[0]).sum()
    assert overlap > 0.97  # polygon: rasterised in the crop, the outline within a pixel


# ----------------------------------------------------------------------------- reading windows


WINDOWS = [(0, 0, 64, 64), (100, 37, 260, 161), (436, 236, 500, 300), (0, 0, 500, 300), (250, 280, 500, 300)]


def write_images(folder):
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (300, 500), dtype=np.uint16)
    deep[0, :4] = [0, 1, 65534, 65535]
    rgb = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    files = {
        "deep.tif": lambda p: tifffile.imwrite(p, deep),  # uncompressed: memory-mapped
        "deep_zlib_strips.tif": lambda p: tifffile.imwrite(p, deep, compression="zlib", rowsperstrip=32),
        "deep_zlib_tiles.tif": lambda p: tifffile.imwrite(p, deep, compression="zlib", tile=(64, 128)),
        "rgb_strips.tif": lambda p: tifffile.imwrite(p, rgb, compression="zlib", rowsperstrip=50),
        "rgba.tif": lambda p: tifffile.imwrite(p, np.dstack([rgb, rgb[:, :, :1]]), compression="zlib"),
        "planar.tif": lambda p: tifffile.imwrite(p, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"),
        "grey.png": lambda p: Image.fromarray(rgb[:, :, 0], mode="L").save(p),
        "rgb.png": lambda p: Image.fromarray(rgb, mode="RGB").save(p),
    }
    for name, write in files.items():
        write(folder / name)
    return list(files)


def test_windows_read_exactly_what_load_image_gives(tmp_path):
    names = write_images(tmp_path)
    for name in names:
        whole = torch.from_numpy(load_image(tmp_path / name).transpose(2, 0, 1).copy())
        reader = open_windows(tmp_path / name)
        try:
            assert (reader.width, reader.height) == (500, 300)
            expected_kind = WholeImage if name.endswith(".png") or name == "planar.tif" else TiffWindows
            assert isinstance(reader, expected_kind), name
            for x0, y0, x1, y1 in WINDOWS:
                assert torch.equal(reader.read((x0, y0, x1, y1)), whole[:, y0:y1, x0:x1]), (name, x0, y0)
        finally:
            reader.close()


def test_16_bit_windows_keep_the_full_range(tmp_path):
    write_images(tmp_path)
    for name in ("deep.tif", "deep_zlib_strips.tif"):
        reader = open_windows(tmp_path / name)
        row = reader.read((0, 0, 4, 1))[0, 0].tolist()
        reader.close()
        assert row == [0.0, np.float32(1 / 65535), np.float32(65534 / 65535), 1.0]


@pytest.mark.parametrize("layout", [{}, {"compression": "zlib", "rowsperstrip": 64},
                                    {"compression": "zlib", "tile": (256, 256)}])
def test_reading_a_window_of_a_large_tiff_takes_memory_of_the_window_not_the_image(tmp_path, layout):
    # 6000 x 4000 px, 16 bit: 48 MB raw, 288 MB as float RGB. A 256 px window as float RGB is 0.8 MB.
    y, x = np.mgrid[0:4000, 0:6000]
    tifffile.imwrite(tmp_path / "big.tif", ((x * 7 + y * 3) % 65536).astype(np.uint16), **layout)
    del y, x
    reader = open_windows(tmp_path / "big.tif")
    tracemalloc.start()
    try:
        window = reader.read((3000, 2000, 3256, 2256))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reader.close()
    assert window.shape == (3, 256, 256)
    assert window[0, 0, 0] == np.float32(((3000 * 7 + 2000 * 3) % 65536) / 65535)
    # strips span the width: 64 rows x 6000 px x 2 B = 0.77 MB each, 5 of them for 256 rows
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"


# ----------------------------------------------------------------------------- training on crops


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """6 synthetic 256 px images, 2 raters, and a model on 128 px tiles: crops in training, windows in validation."""
    import json

    from multirater.data.synthetic import generate

    root = tmp_path_factory.mktemp("large")
    manifest = generate(root / "ds", seed=5, images=6, consensus_images=0, raters=2, size=256)
    (root / "splits.json").write_text(json.dumps({"train": [1, 2, 3, 4], "val": [5, 6], "test": []}))
    config = {"model": {"name": "tiny", "min_size": 128, "max_size": 128, "tile_size": 128, "tile_overlap": 48},
              "training": {"epochs": 2, "batch_size": 2, "augment": True, "augment_p": 0.5, "freeze": "none",
                           "patience": 0}, "config_id": "tiles"}
    return root, manifest, config


def test_training_batches_are_seeded_crops_with_the_boxes_they_show(large, tmp_path):
    from multirater.data.dataset import load_dataset
    from multirater.training.inputs import read_splits
    from multirater.training.job import prepare_job
    from multirater.training.labels import Strategy, training_sources
    from multirater.training.settings import job_config

    root, manifest, config = large
    dataset = load_dataset(manifest)
    job, _ = prepare_job(dataset, read_splits(root / "splits.json", dataset), Strategy("ls"),
                         job_config(config["model"], {**config["training"], "augment": False}, "x"), tmp_path / "m",
                         torch.device("cpu"))
    images, targets = job.batch(1, [1, 2, 3])
    again_images, again_targets = job.batch(1, [1, 2, 3])
    for image_id, image, target, again, again_target in zip([1, 2, 3], images, targets, again_images, again_targets):
        assert image.shape == (3, 128, 128) and torch.equal(image, again)  # a replay draws the same crop
        assert torch.equal(target["boxes"], again_target["boxes"])
        x0, y0, x1, y1 = crop_window(42, 1, image_id, 256, 256, 128)
        whole = torch.from_numpy(load_image(dataset.images[image_id].path).transpose(2, 0, 1).copy())
        assert torch.equal(image, whole[:, y0:y1, x0:x1])
        (rater,) = training_sources(Strategy("ls"), ["rater1", "rater2"], 42, 1, image_id)
        xywh = dataset.boxes(rater, image_id)
        keep, expected = crop_boxes(torch.tensor(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
                                                 dtype=torch.float32), (x0, y0, x1, y1), 0.5)
        assert torch.equal(target["boxes"], expected) and len(target["labels"]) == int(keep.sum())
    assert job.batch(2, [1])[0][0].shape == (3, 128, 128)


def test_tiled_training_resumes_bitwise_and_predicts_in_windows(large, tmp_path):
    import json
    import os
    import signal

    import yaml

    from multirater.cli import main
    from multirater.data.dataset import load_dataset
    from multirater.training.inputs import read_splits
    from multirater.training.labels import Strategy
    from multirater.training.loop import run_training
    from multirater.training.settings import read_training_config
    from multirater.training.signals import EXIT_PREEMPTED

    root, manifest, config = large
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ["--dataset", str(manifest), "--splits", str(root / "splits.json"), "--strategy", "ls",
            "--config", str(tmp_path / "c.yaml"), "--device", "cpu", "--threads", "1"]
    assert main(["train", *args, "--out", str(tmp_path / "straight")]) == 0

    def sigterm_at(epoch, step):
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGTERM)

    dataset = load_dataset(manifest)
    rc = run_training(dataset, read_splits(root / "splits.json", dataset), Strategy("ls"),
                      read_training_config(tmp_path / "c.yaml"), tmp_path / "resumed", torch.device("cpu"),
                      after_step=sigterm_at)
    assert rc == EXIT_PREEMPTED
    assert main(["train", *args, "--out", str(tmp_path / "resumed")]) == 0
    straight, resumed = (torch.load(tmp_path / n / "last.pt", weights_only=True)["model"] for n in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert json.loads((tmp_path / "straight" / "status.json").read_text())["status"] == "ok"
    assert main(["predict", "--model", str(tmp_path / "straight"), "--dataset", str(manifest), "--splits",
                 str(root / "splits.json"), "--images", "val", "--out", str(tmp_path / "p.json"), "--device", "cpu"]) == 0
    detections = json.loads((tmp_path / "p.json").read_text())["detections"]
    assert detections and all(0 <= d["bbox"][0] and d["bbox"][0] + d["bbox"][2] <= 256.01 for d in detections)


def test_crop_targets_carry_one_mask_per_kept_box(large):
    from multirater.data.dataset import load_dataset
    from multirater.training.data import LabelMap, Targets, polygons_to_masks

    _, manifest, _ = large
    dataset = load_dataset(manifest)
    targets = Targets(dataset, LabelMap([c["id"] for c in dataset.categories]), masks=True)
    window = (64, 32, 192, 160)
    cropped = targets.get(["rater1"], 2, window, 0.5)
    whole = targets.get(["rater1"], 2)
    keep, _ = crop_boxes(whole["boxes"], window, 0.5)
    assert cropped["masks"].shape == (int(keep.sum()), 128, 128) and len(cropped["boxes"]) == int(keep.sum())
    full = whole["masks"][keep][:, 32:160, 64:192]
    agree = (cropped["masks"] == full).float().mean()
    assert agree > 0.995 and torch.equal(polygons_to_masks([], 128, 128), torch.zeros(0, 128, 128, dtype=torch.uint8))
