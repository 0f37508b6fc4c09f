"""Importers: each format written by the test as documented (shared/notes/formats.md), converted, and
read back through the dataset API; bad values named by file and item, with no output left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from multirater.cli import main
from multirater.data.dataset import load_dataset

# Width 40, height 32 (the smallest side the detectors use): a box spanning rows 5..15 and columns 10..30 is COCO [10, 5, 20, 10].
W, H = 40, 32
EXPECTED = [10.0, 5.0, 20.0, 10.0]


def _images(root: Path, stems=("a", "b", "c")) -> Path:
    folder = root / "images"
    folder.mkdir(parents=True)
    for stem in stems:
        Image.fromarray(np.zeros((H, W), dtype=np.uint8), mode="L").save(folder / f"{stem}.png")
    return folder


def _multiorg_entry(r0, c0, r1, c1):
    # four corners as [row, col]: p0 top-left, p1 bottom-left, p2 bottom-right, p3 top-right
    return [[r0, c0], [r1, c0], [r1, c1], [r0, c1]]


def _run_import(args: list[str]) -> int:
    return main(["import", *args])


def test_multiorg(tmp_path, capsys):
    images = _images(tmp_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a_Annotator_A.json").write_text(json.dumps({"0": _multiorg_entry(5, 10, 15, 30),
                                                          "1": _multiorg_entry(0, 0, 4, 4)}))
    (labels / "a_Annotator_B.json").write_text(json.dumps({"7": _multiorg_entry(5, 10, 15, 30)}))
    (labels / "b_Annotator_A.json").write_text(json.dumps({}))
    (labels / "b_Annotator_B.json").write_text(json.dumps({"3": _multiorg_entry(20, 1, 29, 9)}))
    cons = tmp_path / "consensus"
    cons.mkdir()
    (cons / "c.json").write_text(json.dumps({"0": _multiorg_entry(5, 10, 15, 30)}))
    out = tmp_path / "ds"
    assert _run_import(["--format", "multiorg", "--images", str(images), "--labels", str(labels),
                        "--consensus-labels", str(cons), "--out", str(out)]) == 0
    ds = load_dataset(out / "dataset.yaml")
    assert ds.rater_names == ["Annotator_A", "Annotator_B"]
    assert [ds.images[i].file_name for i in ds.rater_image_ids] == ["a.png", "b.png"]
    assert [ds.images[i].file_name for i in ds.consensus_image_ids] == ["c.png"]
    assert ds.boxes("Annotator_A", 1).tolist() == [EXPECTED, [0, 0, 4, 4]]
    assert ds.boxes("Annotator_B", 1).tolist() == [EXPECTED]
    assert ds.boxes("Annotator_A", 2).shape == (0, 4)
    assert ds.boxes("Annotator_B", 2).tolist() == [[1, 20, 8, 9]]
    assert ds.boxes("consensus", 3).tolist() == [EXPECTED]
    assert (ds.image_dir / "a.png").samefile(images / "a.png")


def test_multiorg_missing_annotator_file_is_reported(tmp_path, capsys):
    images = _images(tmp_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a_Annotator_A.json").write_text(json.dumps({}))
    (labels / "a_Annotator_B.json").write_text(json.dumps({}))
    (labels / "b_Annotator_A.json").write_text(json.dumps({}))
    out = tmp_path / "ds"
    assert _run_import(["--format", "multiorg", "--images", str(images), "--labels", str(labels), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "b.png: image b.png: no annotation file from rater Annotator_B" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_napari_organoid_counter(tmp_path):
    images = _images(tmp_path, ("a", "b"))
    labels = tmp_path / "labels"
    for rater, boxes in (("rater 1", {"a": [(5, 10, 15, 30)], "b": []}), ("rater2", {"a": [(15, 30, 5, 10)], "b": [(0, 0, 3, 6)]})):
        (labels / rater).mkdir(parents=True)
        for stem, rows in boxes.items():
            data = {str(k): {"box_id": str(k), "x1": str(x1), "y1": str(y1), "x2": str(x2), "y2": str(y2),
                             "confidence": "0.9", "scale_x": "1.0", "scale_y": "1.0", "label": 0}
                    for k, (x1, y1, x2, y2) in enumerate(rows)}
            (labels / rater / f"{stem}_labels.json").write_text(json.dumps(data))
    out = tmp_path / "ds"
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(images), "--labels", str(labels),
                 "--out", str(out)]) == 0
    ds = load_dataset(out / "dataset.yaml")
    assert ds.rater_names == ["rater_1", "rater2"]
    # napari stores (row, col): x1/x2 are rows 5..15, y1/y2 columns 10..30; corner order does not matter.
    assert ds.boxes("rater_1", 1).tolist() == [EXPECTED]
    assert ds.boxes("rater2", 1).tolist() == [EXPECTED]
    assert ds.boxes("rater2", 2).tolist() == [[0, 0, 6, 3]]
    out_xy = tmp_path / "ds_xy"
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(images), "--labels", str(labels),
                 "--out", str(out_xy), "--axes", "xy"]) == 0
    assert load_dataset(out_xy / "dataset.yaml").boxes("rater2", 2).tolist() == [[0, 0, 3, 6]]


def test_napari_bad_value_names_file_and_box(tmp_path, capsys):
    images = _images(tmp_path, ("a",))
    (tmp_path / "labels" / "r1").mkdir(parents=True)
    bad = tmp_path / "labels" / "r1" / "a.json"
    bad.write_text(json.dumps({"12": {"x1": "5", "y1": "ten", "x2": "15", "y2": "30"}}))
    out = tmp_path / "ds"
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(images),
                 "--labels", str(tmp_path / "labels"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"multirater import: error: {bad}: box 12: y1 must be a number, got 'ten'"
    assert not out.exists()


def _write_csv(path: Path, rows: list[tuple]) -> None:
    lines = ["x1,y1,x2,y2,annotator,mask"] + [",".join(str(v) for v in row) + "," for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_csv(tmp_path):
    images = _images(tmp_path)
    labels, cons = tmp_path / "labels", tmp_path / "consensus"
    labels.mkdir()
    cons.mkdir()
    _write_csv(labels / "a.csv", [(10, 5, 30, 15, "A"), (10.5, 5, 30, 15, "B"), (0, 0, 4, 4, "A")])
    _write_csv(labels / "b.csv", [(1, 20, 9, 29, "B")])
    _write_csv(cons / "c.csv", [(10, 5, 30, 15, "consensus")])
    out = tmp_path / "ds"
    assert main(["import", "--format", "csv", "--images", str(images), "--labels", str(labels),
                 "--consensus-labels", str(cons), "--out", str(out)]) == 0
    ds = load_dataset(out / "dataset.yaml")
    assert ds.rater_names == ["A", "B"]
    assert ds.boxes("A", 1).tolist() == [EXPECTED, [0, 0, 4, 4]]
    assert ds.boxes("B", 1).tolist() == [[10.5, 5, 19.5, 10]]
    assert ds.boxes("A", 2).shape == (0, 4)  # rater A drew nothing on b
    assert ds.boxes("B", 2).tolist() == [[1, 20, 8, 9]]
    assert ds.boxes("consensus", 3).tolist() == [EXPECTED]
    assert main(["check", "--dataset", str(out / "dataset.yaml")]) == 0


def test_csv_box_outside_image_names_line(tmp_path, capsys):
    images = _images(tmp_path, ("a",))
    labels = tmp_path / "labels"
    labels.mkdir()
    _write_csv(labels / "a.csv", [(10, 5, 30, 15, "A"), (10, 5, 45, 15, "A"), (3, 3, 3, 9, "B")])
    out = tmp_path / "ds"
    assert main(["import", "--format", "csv", "--images", str(images), "--labels", str(labels), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert f"{labels / 'a.csv'}: line 3: box (10.0, 5.0, 45.0, 15.0) lies outside image a.png (40x32 px)" in err[0]
    assert f"{labels / 'a.csv'}: line 4: box has zero width or height" in err[1]
    assert not out.exists()


# --- the one dataset-folder writer (used by the importers and the synthetic generator) ------------------

def _content(image_dir: Path | None, bbox=(10.0, 5.0, 20.0, 10.0), raters=("r1", "r2")):
    from multirater.data.writer import DatasetContent, coco_dict

    record = {"id": 1, "file_name": "a.png", "width": W, "height": H}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": list(bbox)}
    cons_record = {"id": 2, "file_name": "b.png", "width": W, "height": H}
    return DatasetContent(name="written", raters={r: coco_dict([record], [ann]) for r in raters},
                          consensus=coco_dict([cons_record], []), image_dir=image_dir)


def test_writer_writes_a_dataset_that_loads_back(tmp_path):
    from multirater.data.writer import write_dataset_folder

    images = _images(tmp_path / "shared", ("a", "b"))
    manifest = write_dataset_folder(tmp_path / "nested" / "ds", lambda _: _content(images))
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["consensus.json", "dataset.yaml", "r1.json", "r2.json"]
    ds = load_dataset(manifest)
    assert ds.name == "written" and ds.rater_names == ["r1", "r2"]
    assert ds.boxes("r2", 1).tolist() == [EXPECTED] and ds.consensus_image_ids == [2]
    assert ds.image_dir == images.resolve()  # a path relative to the dataset folder, resolved on load
    assert not Path(yaml.safe_load(manifest.read_text())["images"]).is_absolute()
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["ds"]  # no staging folder left


def test_writer_is_all_or_nothing(tmp_path):
    from multirater.core.errors import UserError
    from multirater.data.writer import write_dataset_folder

    images = _images(tmp_path, ("a", "b"))

    def failing(_):
        raise UserError("stopped while building")

    for build, message in ((failing, "stopped while building"),
                           (lambda _: _content(images, bbox=(30.0, 5.0, 20.0, 10.0)), "lies outside image 1")):
        with pytest.raises(UserError, match=message):
            write_dataset_folder(tmp_path / "out", build)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # neither out nor a staging folder


def test_writer_replaces_only_a_previous_dataset(tmp_path):
    from multirater.core.errors import UserError
    from multirater.data.writer import write_dataset_folder

    def build(image_dir: Path):
        image_dir.mkdir()
        for stem in ("a", "b"):
            Image.fromarray(np.zeros((H, W), dtype=np.uint8), mode="L").save(image_dir / f"{stem}.png")
        return _content(None, raters=raters)

    out = tmp_path / "ds"
    raters = ("r1", "r2", "r3")
    write_dataset_folder(out, build, replace_dataset=True)
    (out / "notes.txt").write_text("mine")
    raters = ("r1",)
    write_dataset_folder(out, build, replace_dataset=True)
    assert sorted(p.name for p in out.iterdir()) == ["consensus.json", "dataset.yaml", "images", "notes.txt", "r1.json"]
    assert load_dataset(out / "dataset.yaml").rater_names == ["r1"]
    # Without replace_dataset, or without a dataset to replace, a non-empty folder is refused.
    for folder, replace in ((out, False), (tmp_path / "busy", True)):
        folder.mkdir(exist_ok=True)
        (folder / "keep.txt").write_text("x")
        before = sorted(p.name for p in folder.iterdir())
        with pytest.raises(UserError, match="folder exists and is not empty"):
            write_dataset_folder(folder, build, replace_dataset=replace)
        assert sorted(p.name for p in folder.iterdir()) == before
