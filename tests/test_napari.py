"""napari-organoid-counter as the plugin writes (shared/notes/formats.md): `<image>.json` beside the image with
`.json.draft`, `.meta.json` and `.csv` files, v0.2.0's `Labels-<image>.json`, nested folders, and `label` kept as
the category."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from multirater.cli import main
from multirater.data.dataset import load_dataset

# A non-square 16-bit TIFF: the box drawn as rows 20-60, columns 100-180 is COCO [100, 20, 80, 40].
W, H = 256, 96
EXPECTED = [100.0, 20.0, 80.0, 40.0]


def _plugin_entry(k: int, x1, y1, x2, y2, label=0) -> dict:
    """One box as the plugin's get_bboxes_as_dict writes it: numbers as strings, x along rows."""
    return {"box_id": str(k), "x1": str(x1), "x2": str(x2), "y1": str(y1), "y2": str(y2), "confidence": "1.0",
            "scale_x": "1.0", "scale_y": "1.0", "label": label}


def _tiff(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, (np.arange(W * H, dtype=np.uint16).reshape(H, W) * 2))


def _save_like_the_plugin(folder: Path, image: str, boxes: dict, prefix: str = "") -> None:
    """``boxes`` as the plugin saves them beside ``image`` (a stem), with its side files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}{image}.json").write_text(json.dumps(boxes))
    (folder / f"{image}.json.draft").write_text(json.dumps(boxes))
    (folder / f"{image}.meta.json").write_text(json.dumps({"window_sizes": [2048], "downsampling": [2]}))
    (folder / f"{image}.csv").write_text("OrganoidID;D1[um];D2[um];Area [um^2]\n0;80;40;2513\n")


def _import(images: Path, labels: Path, out: Path, *extra: str) -> int:
    return main(["import", "--format", "napari-organoid-counter", "--images", str(images), "--labels", str(labels),
                 "--out", str(out), *extra])


def test_as_the_plugin_writes_nested_with_side_files(tmp_path, capsys):
    images = tmp_path / "images"
    for plate in ("plate1", "plate2"):
        _tiff(images / plate / "well_A1.tif")  # the same name in two plates
    labels = tmp_path / "labels"
    one = {"0": _plugin_entry(0, 20, 100, 60, 180)}
    two = {"0": _plugin_entry(0, 10, 10, 30, 50), "1": _plugin_entry(1, 60, 180, 20, 100)}
    # rater anna: her own copy of the image tree, the labels beside the images
    for plate, boxes in (("plate1", one), ("plate2", two)):
        _tiff(labels / "anna" / plate / "well_A1.tif")
        _save_like_the_plugin(labels / "anna" / plate, "well_A1", boxes)
    # rater ben: v0.2.0's Labels-<image>.json, labels only
    for plate, boxes in (("plate1", two), ("plate2", one)):
        _save_like_the_plugin(labels / "ben" / plate, "well_A1", boxes, prefix="Labels-")
    out = tmp_path / "ds"
    assert _import(images, labels, out) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "found: train: 2 images; raters: anna 2, ben 2 (2 labelled by two or more raters)" in said
    # per rater and plate: .json.draft, .meta.json, .csv (and anna's image copies) hold no boxes
    assert "skipped 14 files without boxes" in said
    ds = load_dataset(out / "dataset.yaml")
    assert ds.categories == [{"id": 1, "name": "organoid"}]
    ids = {ds.images[i].file_name: i for i in ds.rater_image_ids}
    assert sorted(ids) == ["plate1/well_A1.tif", "plate2/well_A1.tif"]
    assert ds.boxes("anna", ids["plate1/well_A1.tif"]).tolist() == [EXPECTED]
    assert ds.boxes("anna", ids["plate2/well_A1.tif"]).tolist() == [[10, 10, 40, 20], EXPECTED]
    assert ds.boxes("ben", ids["plate1/well_A1.tif"]).tolist() == [[10, 10, 40, 20], EXPECTED]
    assert ds.boxes("ben", ids["plate2/well_A1.tif"]).tolist() == [EXPECTED]
    assert main(["check", "--dataset", str(out / "dataset.yaml")]) == 0


def test_box_from_any_corner_order(tmp_path):
    _tiff(tmp_path / "images" / "a.tif")
    # (x1, y1) and (x2, y2): any two opposite corners of rows 20-60 and columns 100-180
    diagonals = [(20, 100, 60, 180), (60, 180, 20, 100), (20, 180, 60, 100), (60, 100, 20, 180)]
    folder = tmp_path / "labels" / "r1"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps({str(k): _plugin_entry(k, *d) for k, d in enumerate(diagonals)}))
    assert _import(tmp_path / "images", tmp_path / "labels", tmp_path / "ds") == 0
    assert load_dataset(tmp_path / "ds" / "dataset.yaml").boxes("r1", 1).tolist() == [EXPECTED] * 4


def test_label_is_kept_as_the_category(tmp_path, capsys):
    _tiff(tmp_path / "images" / "a.tif")
    _tiff(tmp_path / "images" / "b.tif")
    labels = tmp_path / "labels"
    _save_like_the_plugin(labels / "r1", "a", {"0": _plugin_entry(0, 20, 100, 60, 180, label=1),
                                               "1": _plugin_entry(1, 0, 0, 10, 10, label=-1)})
    _save_like_the_plugin(labels / "r1", "b", {"0": _plugin_entry(0, 20, 100, 60, 180, label=0)})
    assert _import(tmp_path / "images", labels, tmp_path / "ds") == 0
    assert "found: categories: label -1 (id 1), label 0 (id 2), label 1 (id 3)" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "ds" / "dataset.yaml")
    assert [c["name"] for c in ds.categories] == ["label -1", "label 0", "label 1"]
    assert ds.labels("r1", 1).tolist() == [3, 1] and ds.labels("r1", 2).tolist() == [2]


def test_bad_label_and_two_files_for_one_image_are_named(tmp_path, capsys):
    _tiff(tmp_path / "images" / "a.tif")
    labels = tmp_path / "labels"
    _save_like_the_plugin(labels / "r1", "a", {"7": _plugin_entry(7, 20, 100, 60, 180, label="spheroid")})
    assert _import(tmp_path / "images", labels, tmp_path / "ds") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"multirater import: error: {labels / 'r1' / 'a.json'}: box 7: label must be a number, got 'spheroid'"
    _save_like_the_plugin(labels / "r1", "a", {"7": _plugin_entry(7, 20, 100, 60, 180)})
    _save_like_the_plugin(labels / "r1", "a", {"7": _plugin_entry(7, 20, 100, 60, 180)}, prefix="Labels-")
    assert _import(tmp_path / "images", labels, tmp_path / "ds") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a second label file for image 'a'" in err[0]
    assert not (tmp_path / "ds").exists()


def test_label_files_apart_from_nested_images_match_by_name_when_unambiguous(tmp_path, capsys):
    _tiff(tmp_path / "images" / "plate1" / "a.tif")
    _tiff(tmp_path / "images" / "plate2" / "b.tif")
    labels = tmp_path / "labels"
    _save_like_the_plugin(labels / "r1", "a", {"0": _plugin_entry(0, 20, 100, 60, 180)})
    assert _import(tmp_path / "images", labels, tmp_path / "ds") == 0
    ds = load_dataset(tmp_path / "ds" / "dataset.yaml")
    assert [ds.images[i].file_name for i in ds.rater_image_ids] == ["plate1/a.tif"]
    # the same name in two plates: the flat label file is ambiguous, and said so
    _tiff(tmp_path / "images" / "plate2" / "a.tif")
    assert _import(tmp_path / "images", labels, tmp_path / "ds2") == 2
    assert "several images are named 'a' (plate1/a, plate2/a)" in capsys.readouterr().err
