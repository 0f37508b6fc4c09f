"""The synthetic multi-rater organoid generator: valid files, determinism, and the paper's statistics
measured from the written files (not from the generator's parameters)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from multirater.cli import main
from multirater.data.dataset import load_dataset
from multirater.data.synthetic import generate, rater_styles, synthesize_image


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "demo"
    assert main(["synth", "--out", str(out)]) == 0
    return out


def _f1_reference(a: list, b: list, threshold: float = 0.5) -> float:
    """Independent F1: pycocotools IoU + scipy's assignment maximising matched pairs at IoU >= threshold."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    iou = np.asarray(mask_utils.iou(a, b, [0] * len(b)))
    ok = iou >= threshold
    rows, cols = linear_sum_assignment(np.where(ok, 1.0 + iou, 0.0), maximize=True)
    return 2.0 * int(ok[rows, cols].sum()) / (len(a) + len(b))


def test_default_files_and_sizes(default_dataset):
    ds = load_dataset(default_dataset / "dataset.yaml")
    assert ds.rater_names == ["rater1", "rater2"]
    assert len(ds.rater_image_ids) == 80 and len(ds.consensus_image_ids) == 20
    assert not set(ds.rater_image_ids) & set(ds.consensus_image_ids)
    rec = ds.images[ds.rater_image_ids[0]]
    with Image.open(rec.path) as im:
        assert im.size == (256, 256) and im.mode == "L"
    assert main(["check", "--dataset", str(default_dataset / "dataset.yaml")]) == 0
    # Organoids of roughly 10-60 px, a few to ~25 per image.
    boxes = np.concatenate([ds.boxes("consensus", i) for i in ds.consensus_image_ids])
    side = np.sqrt(boxes[:, 2] * boxes[:, 3])
    assert np.percentile(side, 5) >= 6 and np.percentile(side, 95) <= 70
    per_image = [len(ds.boxes("rater1", i)) for i in ds.rater_image_ids]
    assert 2 <= np.median(per_image) <= 25 and max(per_image) <= 40


def test_default_statistics_match_the_paper(default_dataset):
    """Rater 1 has ~1.5x the objects of rater 2, mean F1 at IoU 0.5 ~0.63 (paper, Fig. 2)."""
    coco = {r: json.loads((default_dataset / f"{r}.json").read_text()) for r in ("rater1", "rater2")}
    by_image = {r: {} for r in coco}
    for r, c in coco.items():
        for ann in c["annotations"]:
            by_image[r].setdefault(ann["image_id"], []).append(ann["bbox"])
    ids = [im["id"] for im in coco["rater1"]["images"]]
    n1 = sum(len(by_image["rater1"].get(i, [])) for i in ids)
    n2 = sum(len(by_image["rater2"].get(i, [])) for i in ids)
    ratio = n1 / n2
    f1 = np.mean([_f1_reference(by_image["rater1"].get(i, []), by_image["rater2"].get(i, [])) for i in ids])
    assert 1.3 <= ratio <= 1.7, ratio
    assert 0.58 <= f1 <= 0.68, f1


def test_provenance_and_masks(default_dataset):
    coco = {r: json.loads((default_dataset / f"{r}.json").read_text()) for r in ("rater1", "rater2", "consensus")}
    sources = {r: [a["attributes"]["source"] for a in c["annotations"]] for r, c in coco.items()}
    # The liberal rater keeps more proposals and adds more by hand (paper, Fig. 2a).
    assert sources["rater1"].count("pretrained") > sources["rater2"].count("pretrained") > 0
    assert sources["rater1"].count("manual") > sources["rater2"].count("manual") > 0
    # Consensus boxes are tight around their polygon masks.
    ious = []
    for ann in coco["consensus"]["annotations"]:
        poly = np.array(ann["segmentation"][0]).reshape(-1, 2)
        tight = [poly[:, 0].min(), poly[:, 1].min(), np.ptp(poly[:, 0]), np.ptp(poly[:, 1])]
        ious.append(mask_utils.iou([ann["bbox"]], [tight], [0])[0, 0])
    assert np.median(ious) > 0.85


def test_viability_is_visible_in_appearance():
    """Viable organoids are brighter inside their outline than dying ones."""
    brightness, viability = [], []
    for index in range(6):
        sample = synthesize_image(3, index, 256, {})
        for poly, via in sample.organoids:
            rle = mask_utils.frPyObjects([poly.ravel().tolist()], 256, 256)
            mask = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
            if mask.sum() >= 30:
                brightness.append(sample.image[mask].mean())
                viability.append(via)
    assert len(viability) > 30
    assert np.corrcoef(brightness, viability)[0, 1] > 0.6


def test_deterministic_from_the_seed(tmp_path):
    a = generate(tmp_path / "a", seed=5, images=3, consensus_images=1, size=96).parent
    b = generate(tmp_path / "b", seed=5, images=3, consensus_images=1, size=96).parent
    c = generate(tmp_path / "c", seed=6, images=3, consensus_images=1, size=96).parent
    for name in ("rater1.json", "rater2.json", "consensus.json", "images/img_0002.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "images/img_0002.png").read_bytes() != (c / "images/img_0002.png").read_bytes()
    # Asking for more images keeps the first ones.
    d = generate(tmp_path / "d", seed=5, images=4, consensus_images=1, size=96).parent
    assert (a / "images/img_0002.png").read_bytes() == (d / "images/img_0002.png").read_bytes()


def test_more_raters_and_rerun_into_same_folder(tmp_path):
    out = tmp_path / "three"
    assert main(["synth", "--out", str(out), "--images", "4", "--consensus-images", "0", "--raters", "3",
                 "--size", "128", "--seed", "1"]) == 0
    ds = load_dataset(out / "dataset.yaml")
    assert ds.rater_names == ["rater1", "rater2", "rater3"] and ds.consensus_image_ids == []
    thresholds = [s.threshold for s in rater_styles(3)]
    assert thresholds == sorted(thresholds)
    assert main(["synth", "--out", str(out), "--images", "2", "--consensus-images", "1", "--size", "128"]) == 0
    ds = load_dataset(out / "dataset.yaml")
    assert ds.rater_names == ["rater1", "rater2"] and len(ds.images) == 3
    assert not (out / "rater3.json").exists()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["img_0001.png", "img_0002.png", "img_0003.png"]


def test_bad_arguments_leave_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["synth", "--out", str(out), "--size", "16"]) == 2
    assert "--size: images must be at least 64 px, got 16" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "--raters", "0"]) == 2
    assert "--raters: need at least 1 rater, got 0" in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(busy), "--images", "2"]) == 2
    assert "folder exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]


def test_library_errors_name_the_setting_not_the_flag(tmp_path):
    from multirater.core.errors import UserError

    for setting, value in (("images", 1), ("consensus_images", -1), ("raters", 0), ("size", 16)):
        with pytest.raises(UserError) as info:
            generate(tmp_path / "out", **{setting: value})
        assert info.value.item == setting and "--" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- rater models and second passes

FIGURE2_SEED = 7  # neither a preset's default seed (0) nor a seed the other tests use


def _boxes_by_image(path) -> tuple[list[int], dict[int, list]]:
    coco = json.loads(path.read_text())
    by_image: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann["bbox"])
    return [im["id"] for im in coco["images"]], by_image


@pytest.fixture(scope="module", params=[("biased", 48, 128), ("biased", 80, 256), ("noisy", 48, 128),
                                        ("noisy", 80, 256)], ids=lambda p: f"{p[0]}-{p[1]}x{p[2]}px")
def preset_statistics(request, tmp_path_factory):
    """Figure 2 statistics of a preset, from its written files (every image annotated twice), at the
    demo's size (48 images of 128 px) and at the default synth size (80 of 256 px)."""
    preset, images, size = request.param
    out = tmp_path_factory.mktemp("preset") / preset
    generate(out, seed=FIGURE2_SEED, images=images, consensus_images=1, size=size, preset=preset,
             repeat_images=images)
    ids, _ = _boxes_by_image(out / "rater1.json")
    first = [_boxes_by_image(out / f"{r}.json")[1] for r in ("rater1", "rater2")]
    second = [_boxes_by_image(out / f"{r}_pass2.json")[1] for r in ("rater1", "rater2")]
    counts = [sum(len(b) for b in f.values()) for f in first]
    sources = {r: [a["attributes"]["source"] for a in json.loads((out / f"{r}.json").read_text())["annotations"]]
               for r in ("rater1", "rater2")}
    return {
        "preset": preset,
        "inter": np.mean([_f1_reference(first[0][i], first[1][i]) for i in ids]),
        "intra": [np.mean([_f1_reference(f[i], s[i]) for i in ids]) for f, s in zip(first, second)],
        "ratio": max(counts) / min(counts),
        "sources": sources,
    }


def test_presets_reach_the_paper_figure2_statistics(preset_statistics):
    """Paper Fig. 2: mean F1@IoU0.5 ~0.63 between raters, one rater with ~1.5x the objects of the other."""
    stats = preset_statistics
    assert 0.58 <= stats["inter"] <= 0.68, stats
    assert 1.3 <= stats["ratio"] <= 1.7, stats
    # Fig. 2a: the prolific rater both keeps more proposals and adds more by hand.
    kept = {r: s.count("pretrained") for r, s in stats["sources"].items()}
    added = {r: s.count("manual") for r, s in stats["sources"].items()}
    assert kept["rater1"] > kept["rater2"] and added["rater1"] > added["rater2"], (kept, added)


def test_intra_rater_agreement_tells_bias_from_noise(preset_statistics):
    """biased: each rater repeats themselves far better than they agree with the other; noisy: about as
    well as they agree with the other."""
    stats = preset_statistics
    intra = float(np.mean(stats["intra"]))
    if stats["preset"] == "biased":
        assert min(stats["intra"]) >= 0.85 and intra - stats["inter"] >= 0.2, stats
    else:
        assert abs(intra - stats["inter"]) <= 0.05, stats


def test_second_pass_is_apart_and_leaves_the_first_unchanged(tmp_path):
    plain = generate(tmp_path / "plain", seed=5, images=4, consensus_images=1, size=96, preset="biased").parent
    twice = generate(tmp_path / "twice", seed=5, images=4, consensus_images=1, size=96, preset="biased",
                     repeat_images=2).parent
    for name in ("rater1.json", "rater2.json", "consensus.json", "images/img_0003.png"):
        assert (plain / name).read_bytes() == (twice / name).read_bytes()
    ds = load_dataset(twice / "dataset.yaml")
    assert ds.sources == ["rater1", "rater2", "consensus"]  # never training labels
    assert ds.repeated_raters == ["rater1", "rater2"] and ds.repeat_image_ids("rater2") == [1, 2]
    # A fresh random part: rater1 redraws every box with some jitter, so no box comes out the same.
    first, second = ds.boxes("rater1", 1), ds.repeat_boxes("rater1", 1)
    assert len(first) and not any(np.allclose(a, b) for a in first for b in second)
    # Rewriting the folder without second passes removes the old pass files.
    generate(twice, seed=5, images=4, consensus_images=1, size=96)
    assert not list(twice.glob("*_pass2.json"))


def test_without_noise_both_passes_are_the_same(tmp_path):
    """The systematic part alone decides the same way on every pass."""
    quiet = "perception_sd=0,miss_rate=0,reject_rate=0,spurious=0,jitter=0"
    out = tmp_path / "quiet"
    assert main(["synth", "--out", str(out), "--images", "3", "--consensus-images", "0", "--size", "128",
                 "--preset", "biased", "--repeat-images", "3", "--rater-style", f"rater1:{quiet}",
                 "--rater-style", f"rater2:{quiet}"]) == 0
    for rater in ("rater1", "rater2"):
        _, first = _boxes_by_image(out / f"{rater}.json")
        _, second = _boxes_by_image(out / f"{rater}_pass2.json")
        assert sum(map(len, first.values())) > 0 and first == second


def test_preset_table_interpolation_and_overrides():
    from multirater.data.synthetic import DEFAULT_PRESET, PRESETS

    first, last = (s.as_dict() for s in PRESETS["biased"])
    three = [s.as_dict() for s in rater_styles(3, "biased")]
    assert three[0] == first and three[2] == last
    assert three[1] == pytest.approx({k: (first[k] + last[k]) / 2 for k in first})
    assert [s.as_dict() for s in rater_styles(1, "noisy")] == [PRESETS["noisy"][0].as_dict()]
    styles = rater_styles(2, "noisy", [{"threshold": 0.6}, None])
    assert styles[0].systematic.threshold == 0.6 and styles[1] == PRESETS["noisy"][1]
    assert styles[0].random == PRESETS["noisy"][0].random
    # noisy: one systematic part for every rater; generate()'s rater model is DEFAULT_PRESET.
    assert PRESETS["noisy"][0].systematic == PRESETS["noisy"][1].systematic
    assert rater_styles(2) == rater_styles(2, DEFAULT_PRESET)


def test_bad_rater_models_name_the_setting(tmp_path, capsys):
    from multirater.core.errors import UserError

    cases = [
        (dict(preset="calm"), "preset", "unknown rater preset 'calm'"),
        (dict(rater_overrides=[{}]), "rater_styles", "gives 1 rater styles for 2 raters"),
        (dict(rater_overrides=[{"thresh": 1}, {}]), "rater_styles[0].thresh", "unknown setting"),
        (dict(rater_overrides=[{}, {"miss_rate": 2}]), "rater_styles[1].miss_rate", "between 0 and 1, got 2"),
        (dict(repeat_images=81), "repeat_images", "between 0 and the 80 multi-rater images"),
    ]
    for kwargs, item, problem in cases:
        with pytest.raises(UserError) as info:
            generate(tmp_path / "out", **kwargs)
        assert info.value.item == item and problem in info.value.problem
    assert main(["synth", "--out", str(tmp_path / "out"), "--rater-style", "rater2:jitter=-1"]) == 2
    assert "--rater-style rater2: jitter: must be at least 0, got -1.0" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "out"), "--rater-style", "rater9:jitter=1"]) == 2
    assert "--rater-style: expected RATER:KEY=VALUE" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "out"), "--images", "4", "--repeat-images", "5"]) == 2
    assert "--repeat-images: must be between 0 and the 4 multi-rater images, got 5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_more_raters_with_presets_and_second_passes(tmp_path, capsys):
    out = tmp_path / "three"
    assert main(["synth", "--out", str(out), "--images", "4", "--consensus-images", "0", "--raters", "3",
                 "--size", "96", "--preset", "noisy", "--repeat-images", "2"]) == 0
    assert main(["agreement", "--dataset", str(out / "dataset.yaml"), "--out", str(tmp_path / "ag")]) == 0
    assert "intra-rater (pass 1 vs 2)" in capsys.readouterr().out
    f1 = pd.read_csv(tmp_path / "ag" / "f1_vs_iou.csv").to_dict("records")
    assert sorted({(r["rater_a"], r["rater_b"]) for r in f1 if r["agreement"] == "intra"}) == [
        ("rater1", "rater1"), ("rater2", "rater2"), ("rater3", "rater3")]


def test_schema_offers_the_library_rater_models():
    """The workflow config's dataset.synthetic keys match the generator's presets and settings."""
    import yaml

    from multirater.config import SCHEMA_PATH
    from multirater.data.synthetic import DEFAULT_PRESET
    from multirater.data.synthetic.presets import PRESET_NAMES, SETTING_RANGES

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    props = schema["properties"]["dataset"]["properties"]["synthetic"]["properties"]
    assert props["preset"]["$ref"] == "#/definitions/rater_preset" and props["preset"]["default"] == DEFAULT_PRESET
    assert schema["definitions"]["rater_preset"]["enum"] == list(PRESET_NAMES)
    # the evidence run's presets (fixed ones: no bias) and its arms' presets (any, graded by default)
    assert schema["definitions"]["fixed_rater_preset"]["enum"] == [p for p in PRESET_NAMES if p != "graded"]
    evidence = schema["properties"]["evidence"]["properties"]
    assert evidence["presets"]["items"]["$ref"] == "#/definitions/fixed_rater_preset"
    arm = evidence["arms"]["additionalProperties"]["properties"]
    assert arm["preset"]["$ref"] == "#/definitions/rater_preset" and arm["preset"]["default"] == "graded"
    assert props["repeat_images"]["default"] == 0 and props["rater_styles"]["default"] is None
    settings = props["rater_styles"]["items"]["properties"]
    assert list(settings) == list(SETTING_RANGES)
    for key, (low, high) in SETTING_RANGES.items():
        assert (settings[key].get("minimum"), settings[key].get("maximum")) == (low, high), key
