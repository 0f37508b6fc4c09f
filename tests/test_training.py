"""Training: label choice, augmentation geometry, schedule, validation mAP, and real runs of the tiny
model (learning, resume after SIGTERM, divergence, freezing, pretrain -> train)."""

import contextlib
import io
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multirater.cli import main
from multirater.data.dataset import load_dataset
from multirater.core.errors import UserError
from multirater.data.synthetic import generate
from multirater.training.augment import Augment, adjust_contrast, hflip, rot90, vflip
from multirater.training.commands import parse_strategy
from multirater.training.inputs import read_splits
from multirater.training.labels import sampled_rater, training_sources, validation_sources
from multirater.training.loop import run_training
from multirater.training.signals import EXIT_PREEMPTED
from multirater.training.schedule import LearningRate
from multirater.training.settings import read_training_config, validate_model, validate_training
from multirater.training.validation_map import coco_map

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- helpers


def write_config(path, training, model=None, config_id="test"):
    data = {"model": {"name": "tiny", "min_size": 128, "max_size": 128, **(model or {})},
            "training": training, "config_id": config_id}
    path.write_text(yaml.safe_dump(data))
    return path


def write_splits(path, train, val, test):
    path.write_text(json.dumps({"seed": 0, "val_fraction": 0.2, "train": train, "val": val, "test": test}))
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """8 multi-rater 128 px images, 2 raters: 6 train, 2 val."""
    root = tmp_path_factory.mktemp("small")
    manifest = generate(root / "ds", seed=5, images=8, consensus_images=0, raters=2, size=128)
    splits = write_splits(root / "splits.json", [1, 2, 3, 4, 5, 6], [7, 8], [])
    return root, manifest, splits


def train_cli(manifest, splits, config, out, strategy="ls", extra=()):
    return main(["train", "--dataset", str(manifest), "--splits", str(splits), "--strategy", strategy,
                 "--config", str(config), "--out", str(out), "--device", "cpu", "--threads", "1", *extra])


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ----------------------------------------------------------------------------- label choice


def test_label_sampling_draws_each_rater_in_proportion():
    n_raters, draws = 3, 6000
    picks = np.array([sampled_rater(42, epoch, image, n_raters) for epoch in range(20) for image in range(300)])
    counts = np.bincount(picks, minlength=n_raters)
    # binomial sd = sqrt(6000 * 1/3 * 2/3) ~ 36.5; allow 4 sd
    assert np.all(np.abs(counts - draws / n_raters) < 4 * 36.5), counts
    # a replay (resumed run) makes the same choices; another epoch makes different ones
    assert [sampled_rater(42, 3, i, 3) for i in range(50)] == [sampled_rater(42, 3, i, 3) for i in range(50)]
    assert [sampled_rater(42, 3, i, 3) for i in range(50)] != [sampled_rater(42, 4, i, 3) for i in range(50)]


def test_strategies_choose_training_and_validation_labels():
    raters = ["a", "b", "c"]
    rs = parse_strategy("rs:b", raters)
    assert rs == parse_strategy("rs-b", raters) and rs.token == "rs-b"
    assert training_sources(rs, raters, 0, 0, 1) == ["b"] and validation_sources(rs, raters) == ["b"]
    ls = parse_strategy("ls", raters)
    assert validation_sources(ls, raters) == raters
    assert training_sources(ls, raters, 7, 2, 9) == [raters[sampled_rater(7, 2, 9, 3)]]
    assert training_sources(parse_strategy("union", raters), raters, 0, 0, 1) == raters
    with pytest.raises(UserError, match="unknown rater 'd'"):
        parse_strategy("rs-d", raters)
    with pytest.raises(UserError, match="--strategy"):
        parse_strategy("majority", raters)


# ----------------------------------------------------------------------------- image cache


def test_training_images_give_exactly_the_decoded_pixels_keeping_only_what_must_be_decoded_whole(tmp_path):
    from types import SimpleNamespace

    import tifffile
    from PIL import Image

    from multirater.data.dataset import load_image
    from multirater.training.image_store import TrainingImages

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8), mode="L").save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), mode="RGB").save(tmp_path / "rgb.png")
    Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16)).save(tmp_path / "deep.png")
    tifffile.imwrite(tmp_path / "deep.tif", rng.integers(0, 65536, (20, 30), dtype=np.uint16))
    tifffile.imwrite(tmp_path / "zlib.tif", rng.integers(0, 65536, (20, 30), dtype=np.uint16), compression="zlib",
                     rowsperstrip=4)
    planar = rng.integers(0, 65536, (3, 20, 30), dtype=np.uint16)  # RGB planes: decoded whole
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    names = {1: "grey.png", 2: "rgb.png", 3: "deep.png", 4: "deep.tif", 5: "zlib.tif", 6: "planar.tif"}
    dataset = SimpleNamespace(images={i: SimpleNamespace(path=tmp_path / n) for i, n in names.items()})
    images = TrainingImages(dataset, list(names))
    for image_id, name in names.items():
        reference = torch.from_numpy(load_image(tmp_path / name).transpose(2, 0, 1).copy())
        assert images.size(image_id) == (30, 20)
        assert torch.equal(images[image_id], reference), name
        assert torch.equal(images.region(image_id, (3, 5, 17, 19)), reference[:, 5:19, 3:17]), name
    # only the images that cannot be read window by window are kept, each in its own pixel type, grey as one channel
    kept = {i: (a.dtype, a.shape[2]) for i, a in images._kept.items()}
    assert kept == {1: (np.uint8, 1), 2: (np.uint8, 3), 3: (np.uint16, 1), 6: (np.uint16, 3)}
    assert images.kept_bytes == 20 * 30 * (1 + 3 + 2 + 6)


# ----------------------------------------------------------------------------- augmentation


def bright_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("ops", [[hflip], [vflip], [rot90], [rot90, rot90, rot90], [hflip, rot90, vflip]])
def test_geometric_augmentation_moves_boxes_with_the_pixels(ops):
    h, w = 40, 60  # not square: rot90 swaps the sides
    image = torch.zeros(3, h, w)
    image[:, 5:12, 30:51] = 1.0  # the box [30, 5, 51, 12] in xyxy
    masks = (image[:1] > 0).to(torch.uint8)
    target = {"boxes": torch.tensor([[30.0, 5.0, 51.0, 12.0]]), "labels": torch.tensor([1]), "masks": masks}
    for op in ops:
        image, target = op(image, target)
    expected = bright_box(image[0].numpy() > 0)  # where the pixels went: the independent reference
    assert target["boxes"][0].tolist() == expected
    assert bright_box(target["masks"][0].numpy() > 0) == expected


# ----------------------------------------------------------------------------- schedule and mAP


def test_contrast_is_torchvisions_and_the_same_with_any_number_of_threads():
    from torchvision.transforms.v2 import functional as F

    image = torch.rand(3, 300, 400, generator=torch.Generator().manual_seed(0))
    for factor in (0.75, 1.2):
        ours = adjust_contrast(image.clone(), factor)
        assert torch.allclose(ours, F.adjust_contrast(image, factor), atol=1e-6)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            assert torch.equal(adjust_contrast(image.clone(), factor), ours)
        finally:
            torch.set_num_threads(threads)


def test_augmentation_is_a_function_of_its_generator_only():
    image = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(1))
    target = {"boxes": torch.tensor([[5.0, 6.0, 20.0, 30.0]]), "labels": torch.tensor([1])}
    augment = Augment(p=0.5)
    torch.manual_seed(0)
    a = augment(image, target, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global generator plays no part ...
    b = augment(image, target, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])
    drawn = {augment(image, target, torch.Generator().manual_seed(s))[0].sum().item() for s in range(8)}
    assert len(drawn) > 4  # ... the generator does


def test_cosine_schedule_with_warmup():
    s = validate_training({"lr": 0.01, "epochs": 10, "schedule": "cosine", "warmup_epochs": 2})
    lr = LearningRate(s, steps_per_epoch=4)
    assert lr.at(0, 0) == pytest.approx(0.001)  # warm-up starts at lr/10
    assert lr.at(1, 0) == pytest.approx(0.001 + 0.009 * 0.5)
    assert lr.at(2, 0) == pytest.approx(0.01)
    assert lr.at(6, 0) == pytest.approx(0.005)  # half way through the cosine
    assert lr.at(9, 3) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 7.75 / 8)))


def test_plateau_schedule_matches_torch_reduce_on_plateau():
    s = validate_training({"lr": 0.1, "schedule": "plateau", "plateau_patience": 2, "plateau_factor": 0.5})
    ours = LearningRate(s, steps_per_epoch=1)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=2, factor=0.5, threshold=0.0)
    for value in [0.1, 0.2, 0.2, 0.15, 0.19, 0.19, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]:
        ours.end_epoch(value)
        ref.step(value)
        assert ours.at(0, 0) == pytest.approx(opt.param_groups[0]["lr"])


def test_validation_map_hand_computed():
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 10, 10]]), np.array([1, 1])), (np.array([[5, 5, 20, 20]]), np.array([1]))]
    perfect = [(b, np.array([0.9] * len(b)), c) for b, c in gt]
    assert coco_map(gt, perfect, [1])["map"] == pytest.approx(1.0)
    # half of image 1's objects... no: 2 of 3 objects found exactly with top scores, nothing else:
    # precision 1 up to recall 2/3 -> 101-point AP = (number of recall points <= 2/3) / 101 = 67/101
    found = [(gt[0][0], np.array([0.9, 0.8]), gt[0][1]), (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    assert coco_map(gt, found, [1])["map"] == pytest.approx(67 / 101)
    assert coco_map([(np.zeros((0, 4)), np.zeros(0, int))], found[:1], [1])["map"] == 0.0


# ----------------------------------------------------------------------------- real runs


def test_tiny_model_learns_to_find_organoids(tmp_path):
    """Train on 20 synthetic images of one rater, predict 4 held-out consensus images (clean labels),
    score with pycocotools: AP50 > 0.5."""
    manifest = generate(tmp_path / "ds", seed=11, images=24, consensus_images=4, raters=1, size=256)
    splits = write_splits(tmp_path / "splits.json", list(range(1, 21)), [21, 22, 23, 24], [25, 26, 27, 28])
    config = write_config(tmp_path / "c.yaml", {"epochs": 10, "batch_size": 1, "lr": 0.001, "freeze": "none",
                                                "augment": False, "patience": 0},
                          model={"min_size": 256, "max_size": 256})
    assert train_cli(manifest, splits, config, tmp_path / "m", strategy="rs-rater1") == 0
    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "ok"
    assert main(["predict", "--model", str(tmp_path / "m"), "--dataset", str(manifest), "--splits", str(splits),
                 "--images", "test", "--out", str(tmp_path / "pred.json"), "--device", "cpu"]) == 0
    pred = json.loads((tmp_path / "pred.json").read_text())
    assert pred["image_ids"] == [25, 26, 27, 28]
    gt_all = json.loads((tmp_path / "ds" / "consensus.json").read_text())
    gt_all["annotations"] = [dict(a, area=a["bbox"][2] * a["bbox"][3], iscrowd=0) for a in gt_all["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_all
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(pred["detections"]), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    print(f"held-out AP50 {ev.stats[1]:.3f}, mAP {ev.stats[0]:.3f}")
    assert ev.stats[1] > 0.5, f"AP50 {ev.stats[1]:.3f}"
    metrics = (tmp_path / "m" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,loss,") and len(metrics) == 11


def test_killed_then_resumed_training_gives_identical_predictions(small, tmp_path):
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 2, "batch_size": 2, "augment": True, "freeze": "none",
                                                "augment_p": 0.5, "patience": 0})
    assert train_cli(manifest, splits, config, tmp_path / "straight") == 0

    dataset = load_dataset(manifest)
    cfg = read_training_config(config)

    def sigterm_at(epoch, step):
        if (epoch, step) == (0, 2):  # a real signal, mid-epoch (3 steps per epoch)
            os.kill(os.getpid(), signal.SIGTERM)

    rc = run_training(dataset, read_splits(splits, dataset), parse_strategy("ls", dataset.rater_names), cfg,
                      tmp_path / "resumed", torch.device("cpu"), after_step=sigterm_at)
    assert rc == EXIT_PREEMPTED
    assert (tmp_path / "resumed" / "last.pt").exists() and not (tmp_path / "resumed" / "status.json").exists()
    assert train_cli(manifest, splits, config, tmp_path / "resumed") == 0

    for name in ("straight", "resumed"):
        assert main(["predict", "--model", str(tmp_path / name), "--dataset", str(manifest), "--splits", str(splits),
                     "--images", "val", "--out", str(tmp_path / f"{name}.json"), "--device", "cpu"]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("straight", "resumed"))
    assert a["detections"] and a["detections"] == b["detections"]
    wa, wb = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = (json.loads((tmp_path / n / "status.json").read_text()) for n in ("straight", "resumed"))
    assert sa == sb
    # the loss columns of metrics.csv agree too (the seconds do not)
    ma, mb = ((tmp_path / n / "metrics.csv").read_text().splitlines() for n in ("straight", "resumed"))
    assert [r.split(",")[:8] for r in ma] == [r.split(",")[:8] for r in mb]


def test_huge_learning_rate_ends_as_diverged_with_exit_0(small, tmp_path):
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 3, "lr": 1.0e6, "optimizer": "sgd", "freeze": "none"})
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    status = json.loads((tmp_path / "m" / "status.json").read_text())
    assert status["status"] == "diverged" and "non-finite loss" in status["message"]
    assert status["strategy"] == "ls" and status["config_id"] == "test"


def test_frozen_parameters_stay_unchanged(small, tmp_path):
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 1, "freeze": "backbone+rpn", "lr": 0.01})
    torch.manual_seed(0)  # the loop seeds the initial weights from the config seed (42)
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    from multirater.training.models import build_model

    torch.manual_seed(42)
    initial = build_model(read_training_config(config)["model"], 2, False).state_dict()
    trained = weights(tmp_path / "m" / "last.pt")
    for key in trained:
        if key.startswith(("backbone.", "rpn.")):
            assert torch.equal(trained[key], initial[key]), key
    changed = [k for k in trained if k.startswith("roi_heads.") and not torch.equal(trained[k], initial[k])]
    assert changed  # the head did train


def test_pretrain_then_train_from_its_checkpoint(small, tmp_path):
    root, manifest, splits = small
    pre = write_config(tmp_path / "pre.yaml", {"epochs": 1, "freeze": "none"}, config_id="pretrain")
    assert main(["pretrain", "--dataset", str(manifest), "--splits", str(splits), "--config", str(pre),
                 "--out", str(tmp_path / "base"), "--device", "cpu", "--threads", "1"]) == 0
    status = json.loads((tmp_path / "base" / "status.json").read_text())
    assert status["status"] == "ok" and status["strategy"] == "union"
    config = write_config(tmp_path / "c.yaml", {"epochs": 1, "freeze": "backbone"})
    assert train_cli(manifest, splits, config, tmp_path / "m", strategy="rs:rater2",
                     extra=("--base", str(tmp_path / "base" / "best.pt"))) == 0
    base, tuned = weights(tmp_path / "base" / "best.pt"), weights(tmp_path / "m" / "best.pt")
    assert torch.equal(base["backbone.0.weight"], tuned["backbone.0.weight"])  # loaded, then frozen
    assert json.loads((tmp_path / "m" / "status.json").read_text())["strategy"] == "rs-rater2"


def test_bad_inputs_fail_clearly_without_output(small, tmp_path, capsys):
    root, manifest, splits = small
    bad = write_config(tmp_path / "bad.yaml", {"epochs": 1, "learning_rate": 0.1})
    assert train_cli(manifest, splits, bad, tmp_path / "m1") == 2
    assert "learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "m1" / "status.json").exists()
    good = write_config(tmp_path / "good.yaml", {"epochs": 1})
    assert train_cli(manifest, splits, good, tmp_path / "m2", strategy="rs-nobody") == 2
    assert "unknown rater 'nobody'" in capsys.readouterr().err
    wrong = write_splits(tmp_path / "wrong.json", [1, 2, 99], [7], [])
    assert train_cli(manifest, wrong, good, tmp_path / "m3") == 2
    assert "99" in capsys.readouterr().err
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    assert train_cli(manifest, splits, good, tmp_path / "m4", extra=("--base", str(tmp_path / "garbage.pt"))) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m4").exists() and not (tmp_path / "m1").exists()


def test_mask_rcnn_trains_on_polygon_masks(small, tmp_path):
    root, manifest, _ = small
    splits = write_splits(tmp_path / "splits.json", [1, 2], [7], [])
    config = write_config(tmp_path / "c.yaml", {"epochs": 1, "augment": True, "augment_p": 1.0},
                          model={"name": "maskrcnn_resnet18_fpn"})
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "ok"
    assert "loss_mask" in (tmp_path / "m" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert any(k.startswith("roi_heads.mask_predictor") for k in weights(tmp_path / "m" / "best.pt"))


def test_sigterm_to_a_training_process_saves_last_pt_and_exits_75(small, tmp_path):
    import subprocess
    import sys
    import time

    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 500, "patience": 0, "freeze": "none"})
    out = tmp_path / "m"
    proc = subprocess.Popen(
        [sys.executable, "-m", "multirater", "train", "--dataset", str(manifest), "--splits", str(splits),
         "--strategy", "ls", "--config", str(config), "--out", str(out), "--device", "cpu", "--threads", "1"],
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").exists():  # wait for the first epoch's checkpoint
            assert proc.poll() is None and time.time() < deadline, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "saved" in err and "rerun to resume" in err
    assert not (out / "status.json").exists()
    progress = torch.load(out / "last.pt", weights_only=True)["progress"]
    assert progress["epoch"] >= 1 and not progress["done"]


def test_out_of_memory_ends_as_out_of_memory_with_exit_0(small, tmp_path):
    # A real allocation failure: images rescaled to 6,000,000 px a side need 432 TB (beyond any
    # address space, so it fails at once whatever the overcommit policy).
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 1}, model={"min_size": 6_000_000, "max_size": 6_000_000})
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    status = json.loads((tmp_path / "m" / "status.json").read_text())
    assert status["status"] == "out_of_memory" and "allocate" in status["message"]


def test_finished_run_is_not_retrained_and_another_configuration_starts_afresh(small, tmp_path, capsys):
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 1})
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    metrics = (tmp_path / "m" / "metrics.csv").read_text()
    capsys.readouterr()
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0  # e.g. a retried job
    err = capsys.readouterr().err
    assert "resuming" in err and "epoch 1/1" not in err  # nothing left to train
    assert (tmp_path / "m" / "metrics.csv").read_text() == metrics
    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "ok"
    other = write_config(tmp_path / "other.yaml", {"epochs": 1, "lr": 0.002})
    assert train_cli(manifest, splits, other, tmp_path / "m") == 0
    err = capsys.readouterr().err
    assert "belongs to another configuration" in err and "epoch 1/1" in err


# ----------------------------------------------------------------------------- settings: one definition


def test_settings_defaults_are_the_documented_ones():
    # The defaults as the paper and the docs give them, written out by hand (not read from the schema).
    documented_training = {
        "epochs": 10, "patience": 5, "optimizer": "adam", "lr": 0.001, "weight_decay": 0, "momentum": 0.9,
        "batch_size": 2, "schedule": "plateau", "warmup_epochs": 0, "plateau_patience": 10, "plateau_factor": 0.5,
        "freeze": "backbone", "augment": True, "augment_p": 0.3, "seed": 42, "seed_per_config": False,
        "val_max_dets": 100, "amp": True, "val_every": 1, "val_windows": "objects",
    }
    assert validate_training(None) == documented_training
    model = validate_model(None)
    assert model == {"name": "tiny", "base_checkpoint": None, "min_size": 256, "max_size": 256, "score_thresh": 0.001,
                     "detections_per_img": 300, "nms_thresh": 0.5, "trainable_layers": 5,
                     "tile_size": None, "tile_overlap": 128, "tile_min_visible": 0.5}
    goat = validate_model({"name": "goat"})
    assert (goat["detections_per_img"], goat["nms_thresh"], goat["trainable_layers"]) == (1000, 0.4, 4)
    # true/false, the paper's search space for freeze, mean backbone/none
    assert validate_training({"freeze": True})["freeze"] == "backbone"
    assert validate_training({"freeze": False})["freeze"] == "none"


@pytest.mark.parametrize("section, values, item, words", [
    ("training", {"epochs": "three"}, "training.epochs", "'three' is not of type 'integer'"),
    ("training", {"augment_p": 0}, "training.augment_p", "less than or equal to the minimum of 0"),
    ("training", {"optimizer": "rmsprop"}, "training.optimizer", "'rmsprop' is not one of"),
    ("model", {"name": "yolo"}, "model.name", "'yolo' is not one of"),
    ("model", {"nms_thresh": 1.5}, "model.nms_thresh", "1.5 is greater than the maximum of 1"),
])
def test_a_bad_setting_is_the_same_error_in_the_workflow_and_in_a_training_config_file(tmp_path, section, values, item,
                                                                                        words):
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate

    with pytest.raises(UserError) as workflow_error:
        validate({section: values}, SCHEMA_PATH)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({section: values, "config_id": "x"}))
    with pytest.raises(UserError) as file_error:
        read_training_config(tmp_path / "job.yaml")
    assert workflow_error.value.item == file_error.value.item == item
    assert workflow_error.value.problem == file_error.value.problem and words in file_error.value.problem
    assert file_error.value.file == str(tmp_path / "job.yaml")


@pytest.mark.parametrize("data, item", [
    ({"model": {"min_size": 512, "max_size": 256}}, "model.max_size"),
    ({"model": {"tile_size": 256, "tile_overlap": 256}}, "model.tile_overlap"),
    ({"model": {"tile_size": 16}}, "model.tile_size"),
    ({"training": {"epochs": 1}, "trianing": {}}, "trianing"),
    ({"config_id": ""}, "config_id"),
])
def test_bad_training_config_file_names_the_key(tmp_path, data, item):
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        read_training_config(tmp_path / "job.yaml")
    assert err.value.item == item and err.value.file == str(tmp_path / "job.yaml")


def test_workflow_rejects_max_size_below_min_size():
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate

    with pytest.raises(UserError, match="model.max_size: must be >= min_size"):
        validate({"model": {"min_size": 300}}, SCHEMA_PATH)  # max_size keeps its default, 256
    with pytest.raises(UserError, match=r"model.tile_overlap: must be < tile_size \(128\), got 128"):
        validate({"model": {"tile_size": 128}}, SCHEMA_PATH)  # tile_overlap keeps its default, 128
    validate({"model": {"tile_size": 512}}, SCHEMA_PATH)


# ----------------------------------------------------------------------------- checkpoints


def test_last_pt_is_a_plain_dict_a_rerun_resumes_from(small, tmp_path):
    from multirater.training.checkpoints import read_checkpoint

    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 1})
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    last = read_checkpoint(tmp_path / "m" / "last.pt")
    assert type(last) is dict
    assert {"model", "optimizer", "schedule", "rng", "fingerprint", "progress"} <= set(last)
    assert (last["progress"]["epoch"], last["progress"]["step"]) == (1, 0)  # 1 epoch done, none of the next
    assert last["progress"]["done"] and len(last["history"]) == 1
    # best.pt holds the same model after this single epoch
    best = read_checkpoint(tmp_path / "m" / "best.pt")
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert best["meta"]["epoch"] == 1 and best["meta"]["config_id"] == "test"


def test_unreadable_last_pt_is_ignored_and_training_starts_afresh(small, tmp_path, capsys):
    root, manifest, splits = small
    config = write_config(tmp_path / "c.yaml", {"epochs": 1})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "last.pt").write_bytes(b"half a checkpoint")
    assert train_cli(manifest, splits, config, tmp_path / "m") == 0
    err = capsys.readouterr().err
    assert "ignoring unreadable" in err and "cannot read checkpoint" in err and "epoch 1/1" in err
    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "ok"
