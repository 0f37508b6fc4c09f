"""The graded rater model (bias 0: noise, 1: systematic thresholds, one inter-rater F1), every rater's labels
of the test images with the test objects' latent facts, and partial coverage; statistics measured from the
written files by the agreement stage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.data.dataset import load_dataset
from multirater.data.synthetic import generate, rater_styles
from multirater.data.synthetic.test_objects import read_test_objects

STATS_SEED = 11  # one seed, used by no other test


@pytest.fixture(scope="module", params=[0.0, 1.0], ids=lambda b: f"bias{b:g}")
def graded_agreement(request, tmp_path_factory):
    """F1@IoU0.5 between the raters and between each rater's two passes, from the agreement stage."""
    out = tmp_path_factory.mktemp("graded")
    manifest = generate(out / "data", seed=STATS_SEED, images=48, consensus_images=1, size=128, preset="graded",
                        bias=request.param, repeat_images=48)
    assert main(["agreement", "--dataset", str(manifest), "--out", str(out / "agreement")]) == 0
    f1 = pd.read_csv(out / "agreement" / "f1_vs_iou.csv")
    at = f1[np.isclose(f1["iou"], 0.5)]
    return {"bias": request.param, "inter": float(at.loc[at.agreement == "inter", "f1_mean"].mean()),
            "intra": float(at.loc[at.agreement == "intra", "f1_mean"].mean())}


def test_graded_statistics_at_both_ends(graded_agreement):
    """Bias 0: the raters differ by noise (intra within 0.05 of inter); bias 1: by bias (intra 0.2 above);
    inter-rater F1 where the bias-1 and bias-0 presets were calibrated (0.61 on 400 images of 256 px)."""
    stats = graded_agreement
    if stats["bias"] == 0.0:
        assert abs(stats["intra"] - stats["inter"]) <= 0.05, stats
    else:
        assert stats["intra"] - stats["inter"] >= 0.2, stats
    assert abs(stats["inter"] - 0.61) <= 0.05, stats


@pytest.mark.parametrize("bias", [0.0, 0.3, 0.5, 1.0])
def test_both_raters_draw_alike_and_bias_zero_is_one_style(bias):
    first, last = rater_styles(2, "graded", bias=bias)
    for key in ("tightness", "redraw", "jitter", "spurious", "perception_sd", "miss_rate", "reject_rate"):
        assert first.as_dict()[key] == last.as_dict()[key], key
    if bias == 0.0:
        assert first == last
    else:  # rater 1 takes dying organoids but not small ones; rater 2 the reverse
        assert first.threshold < last.threshold and first.systematic.min_side > last.systematic.min_side == 0
    # noise falls as the bias grows
    assert first.random.perception_sd == pytest.approx(0.05 + (1 - bias) * 0.15)


def test_bias_errors_name_the_setting(tmp_path, capsys):
    for kwargs, problem in [(dict(preset="graded", bias=1.5), "must be between 0 and 1, got 1.5"),
                            (dict(preset="graded"), "the graded preset needs a bias in [0, 1]"),
                            (dict(preset="noisy", bias=0.5), "is a setting of the graded preset only")]:
        with pytest.raises(UserError) as info:
            generate(tmp_path / "out", images=4, consensus_images=1, size=96, **kwargs)
        assert info.value.item == "bias" and problem in info.value.problem
    assert main(["synth", "--out", str(tmp_path / "out"), "--preset", "biased", "--bias", "0.5"]) == 2
    assert "--bias: is a setting of the graded preset only, not of 'biased'" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "out"), "--preset", "graded", "--bias", "-0.1"]) == 2
    assert "--bias: must be between 0 and 1, got -0.1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("synthetic, item, message", [
    ({"preset": "graded", "bias": 1.2}, "dataset.synthetic.bias", "1.2 is greater than the maximum of 1"),
    ({"preset": "graded"}, "dataset.synthetic.bias", "the graded preset needs a bias"),
    ({"preset": "biased", "bias": 0.2}, "dataset.synthetic.bias", "is a setting of the graded preset only"),
    ({"rater_coverage": "partial", "images": 3}, "dataset.synthetic.images", "at least 4 images"),
])
def test_config_errors_name_the_key(synthetic, item, message):
    from multirater.config import SCHEMA_PATH
    from multirater.workflow_config import load_workflow_config

    config = {"dataset": {"manifest": None, "synthetic": {"images": 8, "raters": 2, **synthetic}},
              "sweep": {"grid": {"lr": [0.001, 0.0005]}}, "selection": {"ls": 2, "rs": 1},
              "ensembles": {"sizes": [2]}}
    with pytest.raises(UserError) as err:
        load_workflow_config(config, SCHEMA_PATH)
    assert str(err.value).startswith(f"config: {item}: ") and message in str(err.value)


def _coco(path):
    return json.loads(path.read_text())


def test_every_rater_labels_the_test_images_and_the_facts_say_who(tmp_path):
    """Without noise, the facts follow the raters' rules: at bias 1 rater 2 labels exactly the organoids of
    viability >= 0.5, rater 1 those of viability >= 0.12 and side >= 13.5 px (at 256 px); each rater's test
    label set holds one box per object the facts give them; the consensus labels stay those of a dataset
    without rater test labels."""
    quiet = "perception_sd=0,miss_rate=0,reject_rate=0,spurious=0"
    out = tmp_path / "data"
    assert main(["synth", "--out", str(out), "--images", "2", "--consensus-images", "4", "--size", "256",
                 "--preset", "graded", "--bias", "1", "--rater-test-labels", "--rater-style", f"rater1:{quiet}",
                 "--rater-style", f"rater2:{quiet}"]) == 0
    dataset = load_dataset(out / "dataset.yaml")
    assert dataset.label_sets == ["consensus", "rater1_test", "rater2_test"]
    raters, objects = read_test_objects(out / "test_objects.csv")
    assert raters == ["rater1", "rater2"] and {o["image_id"] for o in objects} == {3, 4, 5, 6}
    organoids = [o for o in objects if o["kind"] == "organoid"]
    assert len(organoids) > 20
    for o in organoids:
        assert o["by_rater2"] == int(o["viability"] >= 0.50)
        assert o["by_rater1"] == int(o["viability"] >= 0.12 and o["side_at_256"] >= 13.5)
        assert o["n_raters"] == o["by_rater1"] + o["by_rater2"]
    assert not any(o["by_rater1"] or o["by_rater2"] for o in objects if o["kind"] == "debris")
    for rater in raters:
        boxes = _coco(out / f"{rater}_test.json")["annotations"]
        assert len(boxes) == sum(o[f"by_{rater}"] for o in objects)
    assert len(_coco(out / "consensus.json")["annotations"]) == sum(o["consensus"] for o in objects)
    # each labelled object's box is where the facts put the object
    for ann in _coco(out / "rater2_test.json")["annotations"]:
        x, y, w, h = ann["bbox"]
        mine = [o for o in objects if o["image_id"] == ann["image_id"] and o["by_rater2"]]
        centres = [(o["x"] + o["w"] / 2, o["y"] + o["h"] / 2) for o in mine]
        assert min(np.hypot(cx - (x + w / 2), cy - (y + h / 2)) for cx, cy in centres) < 0.2 * max(w, h)
    plain = generate(tmp_path / "plain", seed=0, images=2, consensus_images=4, size=256, preset="graded", bias=1.0,
                     rater_overrides=[{"perception_sd": 0, "miss_rate": 0, "reject_rate": 0, "spurious": 0}] * 2)
    for name in ("consensus.json", "rater1.json", "test_objects.csv", "images/img_0004.png"):
        assert (plain.parent / name).read_bytes() == (out / name).read_bytes(), name
    assert not (plain.parent / "rater1_test.json").exists()


def test_partial_coverage_gives_each_image_one_rater_and_keeps_their_labels(tmp_path):
    full = generate(tmp_path / "full", seed=2, images=6, consensus_images=1, size=96, repeat_images=3).parent
    part = generate(tmp_path / "part", seed=2, images=6, consensus_images=1, size=96, repeat_images=3,
                    rater_coverage="partial").parent
    dataset = load_dataset(part / "dataset.yaml")
    assert dataset.rater_image_ids("rater1") == [1, 3, 5] and dataset.rater_image_ids("rater2") == [2, 4, 6]
    assert dataset.repeat_image_ids("rater1") == [1, 3] and dataset.repeat_image_ids("rater2") == [2]
    complete = load_dataset(full / "dataset.yaml")
    for rater in ("rater1", "rater2"):
        for image_id in dataset.rater_image_ids(rater):
            assert np.array_equal(dataset.boxes(rater, image_id), complete.boxes(rater, image_id))
    assert (part / "consensus.json").read_bytes() == (full / "consensus.json").read_bytes()
