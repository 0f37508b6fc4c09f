"""MultiOrg as published (nested layout, labels beside each TIFF, raters on different images, several test label
sets), the majority consensus of label sets, and the dataset side of both: raters who labelled different images
(``rater_coverage: partial``) and several test label sets (``test_label_sets``)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from conftest import write_tiny_dataset
from multiorg_fixture import LABEL_SETS, write_multiorg
from multirater.cli import main
from multirater.core.errors import UserError
from multirater.data.consensus import majority_consensus
from multirater.data.dataset import load_dataset
from multirater.data.images import load_image
from multirater.data.splits import make_splits

RATERS = ["Annotator_A", "Annotator_B"]


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _run_split(manifest: Path, capsys) -> tuple[int, str, Path]:
    out = manifest.parent / "out" / "splits.json"
    rc = main(["split", "--dataset", str(manifest), "--out", str(out)])
    return rc, capsys.readouterr().err, out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):
    """The fixture's download and its import (with the majority consensus), once for this module."""
    root = tmp_path_factory.mktemp("multiorg") / "download"
    written = write_multiorg(root)
    out = root.parent / "ds"
    assert main(["import", "--format", "multiorg", "--images", str(root), "--out", str(out), "--majority"]) == 0
    return root, written, out / "dataset.yaml"


def _import(root: Path, out: Path, capsys) -> tuple[int, str, str]:
    rc = main(["import", "--format", "multiorg", "--images", str(root), "--out", str(out)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_import_reads_the_published_layout(tmp_path, capsys):
    root = tmp_path / "download"
    written = write_multiorg(root)
    rc, out, err = _import(root, tmp_path / "ds", capsys)
    assert rc == 0, err
    # what it found, as the user sees it
    assert "found: train: 8 images; raters: Annotator_A 4, Annotator_B 4 (0 labelled by two or more raters)" in out
    assert "found: test: 3 images; label sets: t0 3, t1_A 3, t1_B 3" in out
    ds = load_dataset(tmp_path / "ds" / "dataset.yaml")
    assert ds.rater_names == RATERS and ds.label_sets == list(LABEL_SETS) and not ds.has_consensus
    assert ds.rater_coverage == "partial"
    # images keyed by their path: image_0.tiff exists in many plates, each is its own image
    by_name = {rec.file_name: rec for rec in ds.images.values()}
    assert sorted(by_name) == sorted(w.file_name for w in written)
    for image in written:
        rec = by_name[image.file_name]
        assert (rec.width, rec.height) == (image.width, image.height)
        assert rec.path.samefile(root / image.file_name)
        for suffix, boxes in image.boxes.items():
            assert ds.boxes(suffix, rec.id).tolist() == boxes, (image.file_name, suffix)
        if image.split == "train":
            assert ds.raters_of(rec.id) == list(image.boxes)  # the one annotator of this image
        else:
            assert ds.raters_of(rec.id) == [] and rec.id in ds.test_image_ids
    for rater in RATERS:
        expected = sorted(by_name[w.file_name].id for w in written if rater in w.boxes)
        assert ds.rater_image_ids(rater) == expected
    assert set(ds.rater_image_ids("Annotator_A")).isdisjoint(ds.rater_image_ids("Annotator_B"))
    assert ds.test_image_ids == ds.label_set_image_ids("t0") == sorted(by_name[w.file_name].id for w in written
                                                                      if w.split == "test")
    assert main(["check", "--dataset", str(tmp_path / "ds" / "dataset.yaml")]) == 0
    assert "images per rater: Annotator_A 4, Annotator_B 4; test images per label set: t0 3, t1_A 3, t1_B 3" \
        in capsys.readouterr().out


def test_sixteen_bit_range_is_kept(published):
    root, written, manifest = published
    ds = load_dataset(manifest)
    rec = ds.images[ds.test_image_ids[0]]
    raw = tifffile.imread(rec.path)
    assert raw.dtype == np.uint16 and raw.max() > 255 and rec.width != rec.height
    loaded = load_image(rec.path)
    np.testing.assert_allclose(loaded[..., 0], raw / 65535.0, rtol=0, atol=1e-7)
    assert len(np.unique(loaded[..., 0])) > 256  # more grey levels than 8 bits hold


def test_split_puts_every_rater_in_train_and_validation(published):
    _, _, manifest = published
    ds = load_dataset(manifest)
    splits = make_splits(ds, val_fraction=0.1875, seed=42)
    assert sorted(splits["train"] + splits["val"]) == list(ds.rater_image_ids)
    assert splits["test"] == ds.test_image_ids
    for rater in RATERS:
        own = set(ds.rater_image_ids(rater))
        # 4 images each: round(0.1875 * 4) = 1 validation image per rater's group of images
        assert len(own & set(splits["val"])) == 1 and len(own & set(splits["train"])) == 3
    assert make_splits(ds, seed=42) == splits


def test_agreement_says_in_one_line_that_no_image_has_two_raters(published, tmp_path, capsys):
    _, _, manifest = published
    assert main(["agreement", "--dataset", str(manifest), "--out", str(tmp_path / "agr")]) == 0
    out = capsys.readouterr().out
    assert "agreement: inter-rater F1@IoU0.5 n/a (no image has two or more raters)" in out
    f1 = (tmp_path / "agr" / "f1_vs_iou.csv").read_text().splitlines()
    assert len(f1) == 1  # the header alone: no pair of raters shares an image
    counts = (tmp_path / "agr" / "counts.csv").read_text().splitlines()
    assert len(counts) == 1 + 8  # one row per image and the one rater who labelled it


# --- the label file and corner order: rows 20-60, columns 100-180 is COCO [100, 20, 80, 40] ----------------

def _one_image_download(root: Path, entries: dict) -> Path:
    folder = root / "train" / "Normal" / "Plate_1" / "image_0"
    folder.mkdir(parents=True)
    image = np.arange(96 * 256, dtype=np.uint16).reshape(96, 256) * 2  # non-square, values up to 49150
    tifffile.imwrite(folder / "image_0.tiff", image)
    (folder / "image_0_Annotator_A.json").write_text(json.dumps(entries))
    return root


def test_box_from_any_corner_order(tmp_path):
    corners = [[20, 100], [60, 100], [60, 180], [20, 180]]
    entries = {str(k): [list(p) for p in order] for k, order in enumerate(itertools.permutations(corners))}
    assert len(entries) == 24
    root = _one_image_download(tmp_path / "download", entries)
    assert main(["import", "--format", "multiorg", "--images", str(root), "--out", str(tmp_path / "ds")]) == 0
    ds = load_dataset(tmp_path / "ds" / "dataset.yaml")
    assert ds.boxes("Annotator_A", 1).tolist() == [[100, 20, 80, 40]] * 24


# --- bad input: one clear error each, nothing written ------------------------------------------------------

def _unknown_suffix(root: Path) -> Path:
    bad = root / "train" / "Normal" / "Plate_1" / "image_0" / "image_0_Annotator_A_draft.json"
    bad.write_text("{}")
    return bad


def _folder_without_labels(root: Path) -> Path:
    folder = root / "test" / "Macros" / "Plate_5" / "image_0"
    for label in folder.glob("*.json"):
        label.unlink()
    return next(folder.glob("*.tif*"))


def _tiff_that_is_no_image(root: Path) -> Path:
    tiff = root / "train" / "Normal" / "Plate_2" / "image_0" / "image_0.tif"
    tiff.write_bytes(b"II*\x00 this is not an image")
    return tiff


@pytest.mark.parametrize("corrupt, fragments", [
    (_unknown_suffix, ["suffix 'Annotator_A_draft' names no rater"]),
    (_folder_without_labels, ["image has no label file", "image_0_<label set>.json"]),
    (_tiff_that_is_no_image, ["cannot read image"]),
], ids=["unknown-suffix", "folder-without-labels", "tiff-not-an-image"])
def test_bad_input_is_one_clear_error(tmp_path, capsys, corrupt, fragments):
    root = tmp_path / "download"
    write_multiorg(root)
    named = corrupt(root)
    rc, out, err = _import(root, tmp_path / "ds", capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"multirater import: error: {named}")
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "ds").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["download"]


def test_suffixes_match_case_insensitively_and_unknown_test_suffix_is_named(tmp_path, capsys):
    root = tmp_path / "download"
    write_multiorg(root)
    folder = root / "test" / "Normal" / "Plate_4" / "image_0"
    (folder / "image_0_t1_A.json").rename(folder / "image_0_T1_a.json")
    train = root / "train" / "Normal" / "Plate_1" / "image_0"
    (train / "image_0_Annotator_A.json").rename(train / "image_0_annotator_a.json")
    rc, out, err = _import(root, tmp_path / "ds", capsys)
    assert rc == 0, err
    assert "label sets: t0 3, t1_A 3, t1_B 3" in out and "Annotator_A 4" in out
    (folder / "image_0_t0.json").rename(folder / "image_0_baseline.json")
    rc, out, err = _import(root, tmp_path / "ds2", capsys)
    assert rc == 2 and "suffix 'baseline' names no test label set" in err and "t1_A" in err


# --- the majority consensus ------------------------------------------------------------------------------

def _coco(boxes_by_image: dict[int, list[list[float]]]) -> dict:
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in sorted(boxes_by_image)]
    anns = [{"id": k + 1, "image_id": i, "category_id": 1, "bbox": b}
            for k, (i, b) in enumerate((i, b) for i in sorted(boxes_by_image) for b in boxes_by_image[i])]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "organoid"}]}


def test_majority_consensus_hand_computed():
    sets = {
        "t0": _coco({1: [[10, 10, 20, 20], [50, 50, 10, 10], [0, 70, 10, 10]]}),
        "t1_A": _coco({1: [[12, 10, 20, 20], [80, 80, 10, 10], [3, 70, 10, 10]]}),
        "t1_B": _coco({1: [[10, 12, 20, 20], [50, 51, 10, 10], [6, 70, 10, 10]]}),
    }
    coco = majority_consensus(sets)
    boxes = [a["bbox"] for a in coco["annotations"]]
    # all three agree: the mean box
    assert boxes[0] == pytest.approx([32 / 3, 32 / 3, 20, 20])
    # two of three (IoU of [50,50,10,10] and [50,51,10,10] = 90 / 110 >= 0.5): kept, mean box
    assert [50, 50.5, 10, 10] in boxes
    # [80,80] alone: 1 of 3, dropped. The chain 0 -> 3 -> 6 px: IoU(0, 3) = 70/130 = 0.54, IoU(3, 6) = 0.54, but
    # IoU(0, 6) = 40/160 = 0.25: complete linkage groups 0 and 3 (2 of 3, kept), and 6 stays alone (dropped)
    assert [1.5, 70, 10, 10] in boxes
    assert len(boxes) == 3 and all(b[0] != 80 for b in boxes)
    assert [im["id"] for im in coco["images"]] == [1]
    # two sets: a box is kept only when both have it
    pair = majority_consensus({k: sets[k] for k in ("t0", "t1_B")})
    assert [a["bbox"] for a in pair["annotations"]] == [[10, 11, 20, 20], [50, 50.5, 10, 10]]


def test_majority_covers_the_images_every_set_lists():
    sets = {"a": _coco({1: [[0, 0, 10, 10]], 2: [[0, 0, 10, 10]]}), "b": _coco({1: [[0, 0, 10, 10]]}),
            "c": _coco({1: [], 2: [[0, 0, 10, 10]]})}
    coco = majority_consensus(sets)
    assert [im["id"] for im in coco["images"]] == [1]
    assert [a["bbox"] for a in coco["annotations"]] == [[0, 0, 10, 10]]


def test_consensus_command_writes_a_label_set(published, tmp_path, capsys):
    root, _, manifest = published
    ds_dir = tmp_path / "ds"
    shutil.copytree(manifest.parent, ds_dir)
    data = yaml.safe_load((ds_dir / "dataset.yaml").read_text())
    data["images"] = str(root)
    (ds_dir / "dataset.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    out = ds_dir / "vote.json"
    assert main(["consensus", "--dataset", str(ds_dir / "dataset.yaml"), "--out", str(out),
                 "--label-sets", *LABEL_SETS]) == 0
    assert "majority of t0, t1_A, t1_B at IoU 0.5: 3 images" in capsys.readouterr().out
    ds = load_dataset(ds_dir / "dataset.yaml")
    assert json.loads(out.read_text()) == majority_consensus({s: ds.coco(s) for s in LABEL_SETS})
    # the import's --majority wrote the same label set
    assert json.loads(out.read_text()) == ds.coco("majority")
    data["test_label_sets"]["vote"] = "vote.json"
    (ds_dir / "dataset.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_dataset(ds_dir / "dataset.yaml").label_sets == [*LABEL_SETS, "majority", "vote"]
    assert main(["consensus", "--dataset", str(ds_dir / "dataset.yaml"), "--out", str(tmp_path / "x.json"),
                 "--label-sets", "t0", "t9"]) == 2
    assert "--label-sets: 't9' is not a test label set" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- raters on different images


def _partial(manifest: Path, rater2_images: tuple[int, ...]) -> Path:
    """Rater 2 keeps only ``rater2_images``; the manifest says raters cover different images."""
    _edit(manifest.parent / "rater2.json", lambda d: d.update(
        images=[im for im in d["images"] if im["id"] in rater2_images],
        annotations=[a for a in d["annotations"] if a["image_id"] in rater2_images]))
    _edit(manifest.parent / "rater1.json", lambda d: d.update(
        images=[im for im in d["images"] if im["id"] not in rater2_images or im["id"] == 2],
        annotations=[a for a in d["annotations"] if a["image_id"] not in rater2_images or a["image_id"] == 2]))
    manifest.write_text(manifest.read_text() + "rater_coverage: partial\n")
    return manifest


def test_raters_on_different_images(tmp_path):
    manifest = _partial(write_tiny_dataset(tmp_path / "data", n_images=6), rater2_images=(2, 5, 6))
    ds = load_dataset(manifest)
    assert ds.rater_image_ids == [1, 2, 3, 4, 5, 6]  # every image some rater labelled
    assert ds.rater_image_ids("rater1") == [1, 2, 3, 4] and ds.rater_image_ids("rater2") == [2, 5, 6]
    assert ds.raters_of(2) == ["rater1", "rater2"] and ds.raters_of(5) == ["rater2"] and ds.raters_of(7) == []
    assert ds.object_counts(5) == {"rater2": 1} and ds.object_counts(2) == {"rater1": 2, "rater2": 1}
    with pytest.raises(UserError, match="image id 5 is not annotated by rater1"):
        ds.boxes("rater1", 5)
    with pytest.raises(UserError, match="unknown rater 'rater9'"):
        ds.rater_image_ids("rater9")
    splits = make_splits(ds, val_fraction=0.34, seed=0)
    for rater in ds.rater_names:
        own = set(ds.rater_image_ids(rater))
        assert own & set(splits["val"]) and own & set(splits["train"]), (rater, splits)
    assert splits["test"] == [7]


def test_a_rater_who_cannot_be_in_train_and_validation_is_named(tmp_path, capsys):
    manifest = _partial(write_tiny_dataset(tmp_path / "data", n_images=6), rater2_images=(5,))
    rc, err, out = _run_split(manifest, capsys)
    assert rc == 2 and "rater rater2 labelled 1 image(s): at least 2 are needed" in err and not out.exists()


def test_partial_coverage_still_checks_ids_and_file_names(tmp_path, capsys):
    manifest = _partial(write_tiny_dataset(tmp_path / "data", n_images=6), rater2_images=(2, 5, 6))
    _edit(manifest.parent / "rater2.json", lambda d: d["images"][0].update(file_name="im3.png"))  # id 2 -> im3
    assert main(["check", "--dataset", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "rater2.json: image 2: file_name 'im3.png' differs from rater1's 'im2.png' for the same id" in err


# ----------------------------------------------------------------------------- several test label sets


def _add_label_sets(manifest: Path, names: tuple[str, ...] = ("t0", "t1_A")) -> None:
    consensus = json.loads((manifest.parent / "consensus.json").read_text())
    for k, name in enumerate(names):
        coco = json.loads(json.dumps(consensus))
        coco["annotations"][0]["bbox"] = [4 + k, 4, 6, 6]
        (manifest.parent / f"{name}.json").write_text(json.dumps(coco))
    manifest.write_text(manifest.read_text() + "test_label_sets:\n" + "".join(f"  {n}: {n}.json\n" for n in names))


def test_several_test_label_sets(tiny_dataset, capsys):
    _add_label_sets(tiny_dataset)
    ds = load_dataset(tiny_dataset)
    assert ds.label_sets == ["consensus", "t0", "t1_A"]
    assert ds.sources == ["rater1", "rater2", "consensus", "t0", "t1_A"]
    assert ds.test_image_ids == ds.label_set_image_ids("t1_A") == [5]
    assert ds.boxes("t1_A", 5).tolist() == [[5, 4, 6, 6]]
    assert make_splits(ds)["test"] == [5]
    with pytest.raises(UserError, match="unknown test label set 'rater1'"):
        ds.label_set_image_ids("rater1")
    assert main(["check", "--dataset", str(tiny_dataset)]) == 0
    assert "test images per label set: consensus 1, t0 1, t1_A 1" in capsys.readouterr().out


def test_label_sets_without_consensus(tiny_dataset):
    _add_label_sets(tiny_dataset)
    text = tiny_dataset.read_text().replace("consensus: consensus.json\n", "")
    tiny_dataset.write_text(text)
    ds = load_dataset(tiny_dataset)
    assert ds.label_sets == ["t0", "t1_A"] and not ds.has_consensus and ds.consensus_image_ids == []
    assert make_splits(ds)["test"] == [5]


def test_bad_label_sets_are_each_reported(tiny_dataset, capsys):
    _add_label_sets(tiny_dataset, ("t0", "rater1", "consensus", "bad-name"))
    _edit(tiny_dataset.parent / "t0.json", lambda d: d["images"].append(
        {"id": 3, "file_name": "im3.png", "width": 32, "height": 32}))
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "test_label_sets.rater1: 'rater1' is also a rater" in err
    assert "test_label_sets.consensus: the consensus key already names the label set 'consensus'" in err
    assert "test_label_sets.bad-name: invalid label-set name 'bad-name'" in err
    assert "t0.json: image 3: t0 image id 3 ('im3.png') is also a rater image" in err
    tiny_dataset.write_text(tiny_dataset.read_text().replace("rater_coverage", "x") + "rater_coverage: some\n")
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    assert "rater_coverage: must be one of complete, partial, got 'some'" in capsys.readouterr().err


def test_the_split_rule_is_unchanged_when_every_rater_labels_every_image(tmp_path):
    """The documented rule, computed here on its own: sort by mean count (random ties), one draw per stratum."""
    manifest = write_tiny_dataset(tmp_path / "data", n_images=80)
    count = {i: (i * 7) % 23 + 1 for i in range(1, 81)}

    def boxes(d):
        d["annotations"] = [{"id": 100 * im["id"] + k, "image_id": im["id"], "category_id": 1,
                             "bbox": [k % 20, 1, 5, 5]} for im in d["images"] for k in range(count[im["id"]])]

    _edit(manifest.parent / "rater1.json", boxes)
    _edit(manifest.parent / "rater2.json", boxes)
    ds = load_dataset(manifest)
    for seed, fraction in ((42, 0.1875), (3, 0.25), (0, 0.5)):
        rng = np.random.default_rng(seed)
        ids = np.arange(1, 81)
        counts = np.array([count[i] for i in ids], dtype=float)
        n_val = int(min(max(round(fraction * 80), 1), 79))
        order = np.lexsort((rng.random(80), counts))
        val = sorted(int(ids[s[rng.integers(len(s))]]) for s in np.array_split(order, n_val))
        assert make_splits(ds, val_fraction=fraction, seed=seed)["val"] == val


def test_agreement_only_on_images_two_raters_labelled(tmp_path):
    from multirater.agreement.statistics import counts, f1_vs_iou, images_with_two_or_more_raters

    ds = load_dataset(_partial(write_tiny_dataset(tmp_path / "data", n_images=6), rater2_images=(2, 5, 6)))
    assert images_with_two_or_more_raters(ds) == [2]
    f1 = f1_vs_iou(ds, thresholds=(0.5, 0.9)).set_index("iou")["f1_mean"]
    # image 2 alone: rater1 [2,2,10,10], [16,16,8,8]; rater2 [3,2,10,10]; IoU = 90 / 110 = 0.82
    assert f1[0.5] == pytest.approx(2 * 1 / 3) and f1[0.9] == 0.0
    table = counts(ds)
    assert len(table) == 4 + 3 and table[table.rater == "rater2"].image_id.tolist() == [2, 5, 6]


def test_import_settings_that_do_not_fit_the_layout(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(tmp_path / "images"),
                 "--out", str(tmp_path / "ds")]) == 2
    assert "--labels: the napari-organoid-counter format needs the folder of label files" in capsys.readouterr().err
    assert main(["import", "--format", "multiorg", "--images", str(tmp_path / "images"),
                 "--out", str(tmp_path / "ds")]) == 2
    assert "expected the unpacked MultiOrg download: a folder holding train/ and test/" in capsys.readouterr().err
    write_multiorg(tmp_path / "download")
    assert main(["import", "--format", "multiorg", "--images", str(tmp_path / "download"), "--consensus-labels",
                 str(tmp_path / "images"), "--out", str(tmp_path / "ds")]) == 2
    assert "--consensus-labels: MultiOrg as published holds its test labels" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
