"""Intake that fails at `check` (or says so at `apply`), not in a training job hours later: image files cut short,
found from their structure; a MultiOrg image folder without its image; images too small for the detectors; and
`multirater consensus`, whose default voters are the original label sets only. Each is one error naming the file."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from PIL import Image

from conftest import write_tiny_dataset
from multiorg_fixture import LABEL_SETS, write_multiorg
from multirater.cli import main
from multirater.data.image_integrity import pixel_data_problem

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 65535, (48, 64), dtype=np.uint16)


def _cut(path: Path, n_bytes: int) -> Path:
    path.write_bytes(path.read_bytes()[:-n_bytes])
    return path


# ----------------------------------------------------------------------------- files cut short

@pytest.mark.parametrize("layout, kind, count", [
    ({"rowsperstrip": 8}, "strip", 6),
    ({"rowsperstrip": 8, "compression": "zlib"}, "strip", 6),
    ({"tile": (16, 16), "compression": "zlib"}, "tile", 12),
])
def test_a_tiff_cut_short_is_found_from_its_strip_or_tile_table(tmp_path, layout, kind, count):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, PIXELS, **layout)
    whole = path.stat().st_size
    assert pixel_data_problem(path) is None
    _cut(path, 50)
    # the last strip or tile ends at the end of the whole file (tifffile writes the pixel data last)
    assert pixel_data_problem(path) == (f"pixel data cut short: {kind} {count} of {count} ends at byte {whole} but "
                                        f"the file has {whole - 50} bytes (an incomplete copy or download?)")


def test_a_multi_page_tiff_cut_short(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([PIXELS, PIXELS]), rowsperstrip=48)
    with tifffile.TiffFile(path) as tif:
        header = tif.pages[1].offset
    raw = path.read_bytes()
    assert pixel_data_problem(path) is None
    # tifffile wrote page 2's pixels, then its header: a cut there loses the page, which tifffile would drop
    path.write_bytes(raw[:header - 100])
    assert pixel_data_problem(path) == (f"cut short or broken: <tifffile.TiffPages @8> invalid page offset {header} "
                                        f"(the file has {header - 100} bytes; an incomplete copy or download?)")
    path.write_bytes(raw[:header + 4])  # inside the header: tifffile raises
    assert pixel_data_problem(path) == (f"cut short or broken: corrupted IFD structure (the file has {header + 4} "
                                        "bytes; an incomplete copy or download?)")


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_cut_short_is_found_from_its_chunks(tmp_path):
    raw = _png(PIXELS.astype(np.uint8))
    path = tmp_path / "a.png"
    path.write_bytes(raw)
    assert pixel_data_problem(path) is None
    path.write_bytes(raw[:-12])  # IHDR and IDAT whole, the IEND chunk (12 bytes) gone
    assert pixel_data_problem(path) == (f"pixel data cut short: the file ends at byte {len(raw) - 12} after 2 chunks, "
                                        "before the IEND chunk (an incomplete copy or download?)")
    path.write_bytes(raw[:-100])  # inside the image data (IHDR, IDAT, IEND: chunk 1 is the data)
    assert pixel_data_problem(path).startswith("pixel data cut short: chunk 1 (IDAT) ends at byte")


def test_a_jpeg_cut_short_has_no_end_marker(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(PIXELS.astype(np.uint8)).save(path, quality=90)
    assert pixel_data_problem(path) is None
    _cut(path, 40)
    assert pixel_data_problem(path).startswith("pixel data cut short: no end-of-image marker after the image data")


def _as_tiff(manifest: Path, image_id: int) -> Path:
    """Store image ``image_id`` of the tiny dataset as a TIFF (every file naming it updated); return its path."""
    folder = manifest.parent
    png = folder / "images" / f"im{image_id}.png"
    tiff = png.with_suffix(".tif")
    tifffile.imwrite(tiff, np.asarray(Image.open(png)), rowsperstrip=4)
    png.unlink()
    for name in ("rater1.json", "rater2.json", "consensus.json"):
        text = (folder / name).read_text().replace(png.name, tiff.name)
        (folder / name).write_text(text)
    return tiff


def test_check_names_every_image_cut_short(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")
    _cut(manifest.parent / "images" / "im2.png", 200)
    _cut(_as_tiff(manifest, 3), 20)
    assert main(["check", "--dataset", str(manifest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert "im2.png: image 2: pixel data cut short: chunk 1 (IDAT) ends at byte" in err[0]
    assert "im3.tif: image 3: pixel data cut short: strip 8 of 8 ends at byte" in err[1]


# ----------------------------------------------------------------------------- images too small

def test_check_refuses_an_image_too_small_for_the_detectors(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")
    Image.fromarray(np.zeros((20, 24), dtype=np.uint8), mode="L").save(manifest.parent / "images" / "im5.png")
    consensus = json.loads((manifest.parent / "consensus.json").read_text())
    consensus["images"][0].update(width=24, height=20)
    (manifest.parent / "consensus.json").write_text(json.dumps(consensus))
    assert main(["check", "--dataset", str(manifest)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"multirater check: error: {manifest.parent / 'images' / 'im5.png'}: image 5: image is 24x20 px, smaller "
        "than the 32 px a side the detectors can use")


def test_usable_images_skips_those_too_small(tmp_path):
    from multirater.training.prediction import usable_images

    for name, shape in (("big.png", (40, 64)), ("thumb.png", (31, 200))):
        Image.fromarray(np.zeros(shape, dtype=np.uint8), mode="L").save(tmp_path / name)
    kept, skipped = usable_images([1, 2], {1: tmp_path / "big.png", 2: tmp_path / "thumb.png"})
    assert kept == [1]
    assert skipped == {"thumb.png": "image is 200x31 px, smaller than the 32 px a side the detectors can use"}


def test_count_lists_a_skipped_image_without_a_count(tmp_path, capsys):
    (tmp_path / "fused.json").write_text(json.dumps({
        "format": "multirater-detections", "image_ids": [1],
        "detections": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}],
        "meta": {"file_names": {"1": "big.png"}, "skipped_images": {"thumb.png": "image is 200x31 px, too small"}}}))
    assert main(["count", "--detections", str(tmp_path / "fused.json"), "--out", str(tmp_path / "counts.csv")]) == 0
    assert "skipped thumb.png: image is 200x31 px, too small; no detections and no count" in capsys.readouterr().out
    counts = pd.read_csv(tmp_path / "counts.csv", dtype={"image_id": "Int64"})
    assert counts.file_name.tolist() == ["big.png", "thumb.png"]
    assert counts.image_id.tolist()[0] == 1 and pd.isna(counts.image_id[1])
    assert counts.expected_count[0] == 0.5 and pd.isna(counts.expected_count[1]) and pd.isna(counts.n_detections[1])
    assert counts.skipped.fillna("").tolist() == ["", "image is 200x31 px, too small"]
    assert (tmp_path / "counts.csv").read_text().splitlines()[1].startswith("1,big.png,1,1,0.5,")  # ids stay integers


# ----------------------------------------------------------------------------- MultiOrg image folders

def _import_multiorg(root: Path, out: Path, capsys) -> tuple[int, str]:
    rc = main(["import", "--format", "multiorg", "--images", str(root), "--out", str(out)])
    return rc, capsys.readouterr().err


def test_a_multiorg_image_folder_without_its_image(tmp_path, capsys):
    root = tmp_path / "download"
    write_multiorg(root)
    folder = root / "test" / "Macros" / "Plate_5" / "image_0"
    (folder / "image_0.tif").unlink()
    rc, err = _import_multiorg(root, tmp_path / "ds", capsys)
    assert rc == 2
    assert err.strip() == (f"multirater import: error: {folder}: image folder holds 3 label file(s) (image_0_t0.json, "
                           "image_0_t1_A.json, image_0_t1_B.json) but no TIFF image (expected one TIFF and its "
                           "<tiff stem>_<label set>.json files; an incomplete download?)")
    assert not (tmp_path / "ds").exists()


def test_an_empty_multiorg_image_folder(tmp_path, capsys):
    root = tmp_path / "download"
    write_multiorg(root)
    (root / "train" / "Normal" / "Plate_9" / "image_0").mkdir(parents=True)
    (root / "train" / "__MACOSX" / "image_0").mkdir(parents=True)  # a zip's resource forks: no part of the layout
    rc, err = _import_multiorg(root, tmp_path / "ds", capsys)
    assert rc == 2
    folder = root / "train" / "Normal" / "Plate_9" / "image_0"
    assert err.strip().splitlines() == [f"multirater import: error: {folder}: "
                                        "image folder is empty but no TIFF image (expected one TIFF and its "
                                        "<tiff stem>_<label set>.json files; an incomplete download?)"]


# ----------------------------------------------------------------------------- consensus voters

@pytest.fixture(scope="module")
def label_sets_dataset(tmp_path_factory):
    """MultiOrg imported with its majority; the dataset copied beside the download, so each test may edit it."""
    root = tmp_path_factory.mktemp("multiorg") / "download"
    write_multiorg(root)
    assert main(["import", "--format", "multiorg", "--images", str(root), "--out", str(root.parent / "ds"),
                 "--majority"]) == 0
    return root.parent / "ds"


def _copy(dataset: Path, tmp_path: Path) -> Path:
    manifest = tmp_path / "ds" / "dataset.yaml"
    shutil.copytree(dataset, manifest.parent)
    data = yaml.safe_load(manifest.read_text())
    data["images"] = str((dataset / data["images"]).resolve())
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def test_consensus_by_default_votes_over_the_original_label_sets(label_sets_dataset, tmp_path, capsys):
    from multirater.data.consensus import majority_consensus
    from multirater.data.dataset import load_dataset

    manifest = _copy(label_sets_dataset, tmp_path)
    data = yaml.safe_load(manifest.read_text())
    # a second derived set under another name: it says it was derived
    shutil.copy(manifest.parent / "majority.json", manifest.parent / "vote.json")
    data["test_label_sets"]["vote"] = "vote.json"
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    dataset = load_dataset(manifest)
    assert dataset.label_sets == [*LABEL_SETS, "majority", "vote"]
    out = tmp_path / "again.json"
    assert main(["consensus", "--dataset", str(manifest), "--out", str(out)]) == 0
    assert f"majority of {', '.join(LABEL_SETS)} at IoU 0.5" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written == majority_consensus({s: dataset.coco(s) for s in LABEL_SETS})
    assert written["info"]["derived_from"] == list(LABEL_SETS)
    assert written["annotations"] == dataset.coco("majority")["annotations"]  # as the import's majority


def test_consensus_refuses_a_derived_voter_naming_the_manifest_and_the_flag(label_sets_dataset, tmp_path, capsys):
    manifest = _copy(label_sets_dataset, tmp_path)
    out = tmp_path / "x.json"
    assert main(["consensus", "--dataset", str(manifest), "--out", str(out), "--label-sets", "t0", "majority"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"multirater consensus: error: {manifest}: --label-sets: 'majority' is derived from t0, t1_A, t1_B (a "
        "majority consensus), not an original label set: it cannot vote")
    # an old majority file without the marker is known by its name
    majority = json.loads((manifest.parent / "majority.json").read_text())
    del majority["info"]
    (manifest.parent / "majority.json").write_text(json.dumps(majority))
    assert main(["consensus", "--dataset", str(manifest), "--out", str(out), "--label-sets", "majority", "t0"]) == 2
    assert "--label-sets: 'majority' is derived (a majority consensus)" in capsys.readouterr().err
    assert not out.exists()


def test_consensus_without_two_original_label_sets(label_sets_dataset, tmp_path, capsys):
    manifest = _copy(label_sets_dataset, tmp_path)
    data = yaml.safe_load(manifest.read_text())
    data["test_label_sets"] = {"t0": "t0.json", "majority": "majority.json"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["consensus", "--dataset", str(manifest), "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"multirater consensus: error: {manifest}: --label-sets: a majority needs at least 2 original test label "
        "sets, this manifest has 1 (t0; not voting: majority): name them with")
    assert not (tmp_path / "x.json").exists()
