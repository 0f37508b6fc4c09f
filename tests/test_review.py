"""The review queue (`multirater review`), exports for annotation tools (`multirater export`) and the queue's check
against synthetic truth (`multirater review-validate`), on fused detections written by hand: rankings computed by
hand, the napari-organoid-counter round trip through `multirater import`, the COCO results file read by
pycocotools, and outputs written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import write_tiny_dataset
from multirater.cli import main

SOURCES = ["rater1", "rater1", "rater2", "rater2"]  # RSE_4: two models per rater
# (image id, [x, y, w, h], score, votes): image 3 has no detection
RECORDS = [
    (1, [4.25, 6.5, 20.125, 10.75], 0.9, {"rater1": 2, "rater2": 2}),
    (1, [30.0, 20.0, 12.5, 18.0], 0.95, {"rater1": 2, "rater2": 2}),
    (1, [40.5, 2.0, 8.0, 8.0], 0.2, {"rater1": 1, "rater2": 0}),
    (2, [10.0, 10.0, 16.0, 12.0], 0.5, {"rater1": 2, "rater2": 0}),
    (2, [33.0, 25.5, 9.5, 14.25], 0.45, {"rater1": 0, "rater2": 2}),
]
NAMES = {1: "a.png", 2: "b.png", 3: "c.png"}
WIDTH, HEIGHT = 64, 48  # not square: a swapped axis shows


def _images(folder: Path, names=NAMES.values()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8), mode="L").save(folder / name)
    return folder


def _fused(path: Path, records=RECORDS, names=NAMES) -> Path:
    detections = [{"image_id": i, "category_id": 1, "bbox": box, "score": score, "n_models": sum(votes.values()),
                   "score_std": 0.1, "votes": votes} for i, box, score, votes in records]
    path.write_text(json.dumps({"format": "multirater-detections", "image_ids": sorted(names), "detections": detections,
                                "meta": {"file_names": {str(i): n for i, n in names.items()},
                                         "fusion": {"iou": 0.5, "models": 4, "sources": SOURCES}}}))
    return path


def _review(tmp_path: Path, *extra: str) -> int:
    return main(["review", "--detections", str(tmp_path / "fused.json"), "--images", str(tmp_path / "new"),
                 "--out", str(tmp_path / "review"), *extra])


@pytest.fixture
def new_images(tmp_path: Path) -> Path:
    _images(tmp_path / "new")
    _fused(tmp_path / "fused.json")
    return tmp_path


# ----------------------------------------------------------------------------- the review queue

def test_review_ranks_images_and_boxes_hand_computed(new_images, capsys):
    tmp_path = new_images
    assert _review(tmp_path, "--top", "3") == 0
    out = capsys.readouterr().out
    images = pd.read_csv(tmp_path / "review" / "images.csv")
    # sum of p(1-p): image 2: 0.25 + 0.2475; image 1: 0.09 + 0.0475 + 0.16; image 3: none
    assert images.image_id.tolist() == [2, 1, 3] and images["rank"].tolist() == [1, 2, 3]
    assert images.file_name.tolist() == ["b.png", "a.png", "c.png"]
    assert images.expected_disagreement.tolist() == pytest.approx([0.4975, 0.2975, 0.0])
    assert images.expected_count.tolist() == pytest.approx([0.95, 2.05, 0.0])
    assert images.count_std.tolist() == pytest.approx([0.4975 ** 0.5, 0.2975 ** 0.5, 0.0])
    assert images.n_detections.tolist() == [2, 3, 0]
    assert "review first: b.png (expected disagreement 0.50, 0.9 +/- 0.7 objects)" in out

    boxes = pd.read_csv(tmp_path / "review" / "boxes.csv")
    assert boxes.score.tolist() == [0.5, 0.45, 0.2, 0.9, 0.95]  # p(1-p): .25, .2475, .16, .09, .0475
    assert boxes.uncertainty.tolist() == pytest.approx([0.25, 0.2475, 0.16, 0.09, 0.0475])
    assert boxes.detection.tolist() == [3, 4, 2, 0, 1] and boxes.image_id.tolist() == [2, 2, 1, 1, 1]
    assert boxes[["x", "y", "w", "h"]].iloc[1].tolist() == [33.0, 25.5, 9.5, 14.25]
    assert boxes.votes_rater1.tolist() == [2, 0, 1, 2, 2] and boxes.votes_rater2.tolist() == [0, 2, 0, 2, 2]
    assert boxes.n_models.tolist() == [2, 2, 1, 4, 4]

    sheet = Image.open(tmp_path / "review" / "contact_sheet.png")
    assert sheet.format == "PNG" and sheet.width > 400 and sheet.height > 200
    assert "the 3 most uncertain on contact_sheet.png" in out


def test_review_of_a_dataset_s_images(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data")
    _fused(tmp_path / "fused.json", records=[(5, [4.0, 4.0, 6.0, 6.0], 0.7, {"rater1": 1, "rater2": 1})],
           names={5: "ignored.png"})
    assert main(["review", "--detections", str(tmp_path / "fused.json"), "--dataset", str(manifest),
                 "--out", str(tmp_path / "review")]) == 0
    boxes = pd.read_csv(tmp_path / "review" / "boxes.csv")
    assert boxes.file_name.tolist() == ["im5.png"] and boxes.uncertainty.tolist() == pytest.approx([0.21])


def test_review_of_a_single_model_has_no_votes(new_images):
    tmp_path = new_images
    data = json.loads((tmp_path / "fused.json").read_text())
    for record in data["detections"]:
        for key in ("n_models", "score_std", "votes"):
            record.pop(key)
    del data["meta"]["fusion"]
    (tmp_path / "fused.json").write_text(json.dumps(data))
    assert _review(tmp_path) == 0
    boxes = pd.read_csv(tmp_path / "review" / "boxes.csv")
    assert not [c for c in boxes.columns if c.startswith("votes_") or c in ("n_models", "score_std")]


def test_a_crop_is_a_square_around_its_box_cut_to_the_image():
    from multirater.review.contact_sheet import crop_window

    # a 40 x 10 box: its longer side 40 plus 20 (half of it) each way, an 80 px square about its centre (80, 85)
    assert crop_window((60.0, 80.0, 40.0, 10.0), 200, 200) == (40, 45, 120, 125)
    # a 10 x 4 box: the margin is at least 8 px: half a side of 5 + 8 about (15, 12), cut at the image's top
    assert crop_window((10.0, 10.0, 10.0, 4.0), 100, 100) == (2, 0, 28, 25)
    assert crop_window((0.0, 95.0, 4.0, 4.0), 100, 100) == (0, 87, 12, 100)  # cut at the left and the bottom
    assert crop_window((1.0, 1.0, 0.0, 0.0), 100, 100) == (0, 0, 9, 9)


def test_review_crops_a_16_bit_tiff(new_images):
    import tifffile

    tmp_path = new_images
    pixels = np.random.default_rng(1).integers(0, 2000, (HEIGHT, WIDTH), dtype=np.uint16)  # dim: 16-bit range
    tifffile.imwrite(tmp_path / "new" / "c.tif", pixels, rowsperstrip=8)
    _fused(tmp_path / "fused.json", records=[(3, [5.0, 5.0, 20.0, 10.0], 0.5, {"rater1": 1, "rater2": 1})],
           names={3: "c.tif"})
    assert _review(tmp_path) == 0
    sheet = np.asarray(Image.open(tmp_path / "review" / "contact_sheet.png").convert("L"))
    assert sheet.min() < 40 and sheet.max() > 215  # stretched to the crop's own range, not left near black


@pytest.mark.parametrize("change, message", [
    (lambda t: (t / "new" / "b.png").unlink(), "fused.json: image 2: image file not found: "),
    (lambda t: _edit(t / "fused.json", lambda d: d["meta"].pop("file_names")),
     "fused.json: meta.file_names is missing: these detections were not predicted on a folder of images"),
])
def test_review_errors_name_the_file_and_write_nothing(new_images, capsys, change, message):
    tmp_path = new_images
    change(tmp_path)
    assert _review(tmp_path) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "review").exists()


def test_review_needs_the_images(new_images, capsys):
    assert main(["review", "--detections", str(new_images / "fused.json"), "--out", str(new_images / "r")]) == 2
    assert "--images: give the images the detections were made on" in capsys.readouterr().err


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_review_writes_its_folder_whole_or_not_at_all(new_images, capsys):
    tmp_path = new_images
    assert _review(tmp_path) == 0
    before = _tree(tmp_path / "review")
    assert {"images.csv", "boxes.csv", "contact_sheet.png"} <= set(before)
    # a rerun fails while drawing the contact sheet (after both tables were made): the earlier output stays
    (tmp_path / "new" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken")
    _edit(tmp_path / "fused.json", lambda d: [r.update(score=0.5) for r in d["detections"]])
    assert _review(tmp_path) == 2
    assert "a.png: cannot read image" in capsys.readouterr().err
    assert _tree(tmp_path / "review") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    # a folder that is not an earlier review is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["review", "--detections", str(tmp_path / "fused.json"), "--images", str(tmp_path / "new"),
                 "--out", str(tmp_path / "mine")]) == 2
    assert "mine: folder exists, is not empty and was not written by `multirater review`" in capsys.readouterr().err
    assert _tree(tmp_path / "mine") == {"notes.txt": b"keep"}


# ----------------------------------------------------------------------------- exports

def _export(tmp_path: Path, fmt: str, out: str, *extra: str) -> int:
    return main(["export", "--format", fmt, "--detections", str(tmp_path / "fused.json"), "--images",
                 str(tmp_path / "new"), "--out", str(tmp_path / out), *extra])


def test_napari_export_is_the_plugin_s_format(new_images):
    tmp_path = new_images
    assert _export(tmp_path, "napari-organoid-counter", "napari") == 0
    folder = tmp_path / "napari" / "ensemble"
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "b.json", "c.json"]
    entries = json.loads((folder / "a.json").read_text())
    assert list(entries) == ["0", "1", "2"]
    # [x, y, w, h] = [4.25, 6.5, 20.125, 10.75]: x1/x2 are rows (y), y1/y2 columns (x); numbers as strings
    assert entries["0"] == {"box_id": "0", "x1": "6.5", "x2": "17.25", "y1": "4.25", "y2": "24.375",
                            "confidence": "0.9", "scale_x": "1.0", "scale_y": "1.0", "label": 1}
    assert json.loads((folder / "c.json").read_text()) == {}  # an image without detections: an empty file


def test_napari_export_imports_back_to_the_same_boxes(new_images):
    tmp_path = new_images
    assert _export(tmp_path, "napari-organoid-counter", "napari") == 0
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(tmp_path / "new"), "--labels",
                 str(tmp_path / "napari"), "--out", str(tmp_path / "ds")]) == 0
    manifest = yaml.safe_load((tmp_path / "ds" / "dataset.yaml").read_text())
    assert list(manifest["raters"]) == ["ensemble"]
    coco = json.loads((tmp_path / "ds" / "ensemble.json").read_text())
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    assert sorted(names.values()) == ["a.png", "b.png", "c.png"]
    assert {im["file_name"]: (im["width"], im["height"]) for im in coco["images"]}["a.png"] == (WIDTH, HEIGHT)
    imported = sorted((names[a["image_id"]], *a["bbox"]) for a in coco["annotations"])
    exported = sorted((NAMES[i], *box) for i, box, _, _ in RECORDS)
    assert len(imported) == len(exported)
    for got, want in zip(imported, exported):
        assert got[0] == want[0] and got[1:] == pytest.approx(want[1:], abs=1e-9)


def test_export_min_score_and_by_default_every_detection(new_images, capsys):
    tmp_path = new_images
    assert _export(tmp_path, "napari-organoid-counter", "all") == 0
    assert sum(len(json.loads(p.read_text())) for p in (tmp_path / "all").rglob("*.json")) == 5
    assert _export(tmp_path, "napari-organoid-counter", "sure", "--min-score", "0.5") == 0
    assert "(2 below --min-score 0.5 left out)" in capsys.readouterr().out
    kept = [float(e["confidence"]) for p in (tmp_path / "sure").rglob("*.json")
            for e in json.loads(p.read_text()).values()]
    assert sorted(kept) == [0.5, 0.9, 0.95]


def test_coco_export_is_a_results_file_pycocotools_reads(new_images):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    tmp_path = new_images
    assert main(["export", "--format", "coco", "--detections", str(tmp_path / "fused.json"),
                 "--out", str(tmp_path / "coco.json")]) == 0
    # ground truth: the detections' own boxes; read as results, each must find its box: AP 1
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": WIDTH, "height": HEIGHT} for i in NAMES],
                  "annotations": [{"id": k + 1, "image_id": i, "category_id": 1, "bbox": box, "area": box[2] * box[3],
                                   "iscrowd": 0} for k, (i, box, _, _) in enumerate(RECORDS)],
                  "categories": [{"id": 1, "name": "organoid"}]}
    gt.createIndex()
    results = gt.loadRes(str(tmp_path / "coco.json"))
    got = sorted((a["image_id"], *a["bbox"], a["score"]) for a in results.dataset["annotations"])
    assert got == sorted((i, *box, score) for i, box, score, _ in RECORDS)
    evaluation = COCOeval(gt, results, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_export_writes_whole_or_not_at_all(new_images, capsys):
    tmp_path = new_images
    assert _export(tmp_path, "napari-organoid-counter", "napari") == 0
    before = _tree(tmp_path / "napari")
    # two images whose label files would collide: refused, the earlier export stays as it was
    _images(tmp_path / "new", ["a.tif"])
    _edit(tmp_path / "fused.json", lambda d: d["meta"]["file_names"].update({"3": "a.tif"}))
    assert _export(tmp_path, "napari-organoid-counter", "napari") == 2
    assert "images a.png and a.tif would share the label file a.json" in capsys.readouterr().err
    assert _tree(tmp_path / "napari") == before
    # a malformed detections file: no COCO file
    (tmp_path / "bad.json").write_text('{"detections": [{"image_id": 1}]}')
    assert main(["export", "--format", "coco", "--detections", str(tmp_path / "bad.json"), "--out",
                 str(tmp_path / "coco.json")]) == 2
    assert "bad.json: detection 0: missing key 'category_id'" in capsys.readouterr().err
    assert not (tmp_path / "coco.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- the check against synthetic truth

def _square(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _truth_dataset(root: Path) -> Path:
    """One 100 px image, two raters. Object A: both raters; B: rater1 only; C and the debris D: rater2 only."""
    _images(root / "images", [])
    Image.fromarray(np.zeros((100, 100), dtype=np.uint8), mode="L").save(root / "images" / "img.png")
    outlines = {"A": _square(10, 10, 20, 20), "B": _square(50, 10, 20, 20), "C": _square(10, 50, 20, 20),
                "D": _square(60, 60, 10, 10)}
    boxes = {"rater1": {"A": [10, 10, 20, 20], "B": [50, 10, 20, 20]},
             "rater2": {"A": [11, 10, 20, 20], "C": [10, 50, 20, 20], "D": [60, 60, 10, 10]}}
    for rater, by_object in boxes.items():
        annotations = [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": box, "segmentation": outlines[o]}
                       for k, (o, box) in enumerate(by_object.items())]
        (root / f"{rater}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "img.png", "width": 100, "height": 100}], "annotations": annotations,
            "categories": [{"id": 1, "name": "organoid"}]}))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"images": "images",
                                                       "raters": {"rater1": "rater1.json", "rater2": "rater2.json"}}))
    return root / "dataset.yaml"


def test_review_validate_hand_built_case(tmp_path, capsys):
    manifest = _truth_dataset(tmp_path / "truth")
    # reviewed boxes in rank order, and the object each is a box of (IoU with that object's rater boxes):
    # B (0.90), none, C (0.90), A (1.0), D (0.82), A (0.68 with rater1's box)
    rows = [[50, 11, 20, 20], [80, 80, 10, 10], [10, 51, 20, 20], [10, 10, 20, 20], [61, 60, 10, 10], [12, 12, 20, 20]]
    pd.DataFrame([{"rank": k + 1, "image_id": 1, "file_name": "img.png", "x": x, "y": y, "w": w, "h": h,
                   "score": 0.5, "uncertainty": 0.25} for k, (x, y, w, h) in enumerate(rows)]).to_csv(
        tmp_path / "boxes.csv", index=False)
    assert main(["review-validate", "--boxes", str(tmp_path / "boxes.csv"), "--dataset", str(manifest), "--top", "3",
                 "--out", str(tmp_path / "shares.json")]) == 0
    shares = json.loads((tmp_path / "shares.json").read_text())
    # raters per box: 1, 0, 1, 2, 1, 2
    assert shares["top"] == {"boxes": 3, "share_single": 2 / 3, "share_all_raters": 0.0, "share_none": 1 / 3,
                             "n_single": 2, "n_all_raters": 0, "n_none": 1, "n_labelled": 2,
                             "share_single_of_labelled": 1.0}
    assert shares["all"] == {"boxes": 6, "share_single": 0.5, "share_all_raters": 2 / 6, "share_none": 1 / 6,
                             "n_single": 3, "n_all_raters": 2, "n_none": 1, "n_labelled": 5,
                             "share_single_of_labelled": 0.6}
    out = capsys.readouterr().out
    assert "0.67 of the 3 most uncertain boxes (2), 0.500 of all 6 (3)" in out
    assert "among boxes of labelled objects: 1.00 of the 2 in the top 3, 0.60 of all 5" in out


def test_review_validate_needs_outlines_and_writes_nothing_without(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")  # boxes without segmentation outlines
    pd.DataFrame([{"rank": 1, "image_id": 1, "file_name": "im1.png", "x": 2, "y": 2, "w": 10, "h": 10, "score": 0.5,
                   "uncertainty": 0.25}]).to_csv(tmp_path / "boxes.csv", index=False)
    assert main(["review-validate", "--boxes", str(tmp_path / "boxes.csv"), "--dataset", str(manifest),
                 "--out", str(tmp_path / "shares.json")]) == 2
    assert "rater1.json: annotation 10: annotation has no segmentation outline" in capsys.readouterr().err
    assert not (tmp_path / "shares.json").exists()


def test_objects_from_rater_files_are_the_generator_s_objects(tmp_path):
    """Outlines group the raters' annotations into the very objects the generator drew them from."""
    from multirater.data.dataset import load_dataset
    from multirater.data.synthetic import generate
    from multirater.data.synthetic.generation import synthesize_image
    from multirater.data.synthetic.presets import rater_names, rater_styles
    from multirater.review.validation import labelled_objects

    seed, size = 5, 128
    dataset = load_dataset(generate(tmp_path / "synth", seed=seed, images=3, consensus_images=1, raters=2, size=size))
    objects = labelled_objects({r: dataset.coco(r) for r in dataset.rater_names},
                               {r: str(dataset.coco_path(r)) for r in dataset.rater_names})
    styles = dict(zip(rater_names(2), rater_styles(2, "biased")))
    for index in range(3):
        sample = synthesize_image(seed, index, size, styles)
        by_object: dict[int, set[str]] = {}
        for rater, annotations in sample.annotations.items():
            for _box, outline, _provenance in annotations:
                by_object.setdefault(id(outline), set()).add(rater)  # the generator's object: its outline array
        expected = sorted(sorted(raters) for raters in by_object.values())
        got = sorted(sorted(o.raters) for o in objects[f"img_{index + 1:04d}.png"])
        assert got == expected and any(len(r) == 1 for r in got) and any(len(r) == 2 for r in got)
