"""The synthetic multi-rater organoid generator: valid files, determinism, and the paper's statistics
measured from the written files (not from the generator's parameters)."""

from __future__ import annotations

import json

import numpy as np
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
