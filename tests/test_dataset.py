"""Dataset manifest: loading, image normalisation, every validation error, and splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import write_tiny_dataset
from multirater.cli import main
from multirater.data.dataset import load_dataset
from multirater.data.images import load_image
from multirater.data.splits import make_splits
from multirater.core.errors import UserError, UserErrors


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _run_split(manifest: Path, capsys) -> tuple[int, str, Path]:
    out = manifest.parent / "out" / "splits.json"
    rc = main(["split", "--dataset", str(manifest), "--out", str(out)])
    return rc, capsys.readouterr().err, out


# ----------------------------------------------------------------------------- loading


def test_load_tiny_dataset_api(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    assert ds.rater_names == ["rater1", "rater2"]
    assert ds.categories == [{"id": 1, "name": "organoid"}]
    assert ds.rater_image_ids == [1, 2, 3, 4]
    assert ds.consensus_image_ids == [5]
    assert sorted(ds.images) == [1, 2, 3, 4, 5]
    rec = ds.images[2]
    assert (rec.id, rec.file_name, rec.width, rec.height) == (2, "im2.png", 32, 32)
    assert rec.path == ds.image_dir / "im2.png" and rec.path.is_file()
    np.testing.assert_array_equal(ds.boxes("rater1", 3), [[2, 2, 10, 10], [16, 16, 8, 8]])
    assert ds.boxes("rater1", 3).dtype == np.float64
    assert ds.labels("rater2", 3).tolist() == [1] and ds.labels("rater2", 3).dtype == np.int64
    assert ds.boxes("consensus", 5).tolist() == [[4, 4, 6, 6]]
    assert [a["id"] for a in ds.annotations("rater1", 1)] == [10, 11]
    assert ds.coco_path("rater2") == tiny_dataset.parent / "rater2.json"
    assert len(ds.coco("consensus")["images"]) == 1
    with pytest.raises(UserError, match="unknown annotation source 'rater9'"):
        ds.boxes("rater9", 1)


def test_load_image_normalises_formats(tmp_path):
    grey8 = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    Image.fromarray(grey8, mode="L").save(tmp_path / "g8.png")
    out = load_image(tmp_path / "g8.png")
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[0, 1], [0.2, 0.4]], atol=1e-6)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])

    grey16 = np.array([[0, 65535], [13107, 32768]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_image(tmp_path / "g16.png")[..., 1], grey16 / 65535.0, atol=1e-6)

    tifffile.imwrite(tmp_path / "g16.tif", grey16)
    np.testing.assert_allclose(load_image(tmp_path / "g16.tif")[..., 0], grey16 / 65535.0, atol=1e-6)

    rgb = np.zeros((5, 6, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 255, 51
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    np.testing.assert_allclose(load_image(tmp_path / "c.png")[0, 0], [1.0, 0.0, 0.2], atol=1e-6)
    tifffile.imwrite(tmp_path / "chw.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")  # channel-first microscopy TIFF
    np.testing.assert_allclose(load_image(tmp_path / "chw.tif")[0, 0], [1.0, 0.0, 0.2], atol=1e-6)

    flat = np.full((8, 8), 128, dtype=np.uint8)
    Image.fromarray(flat, mode="L").save(tmp_path / "f.jpg", quality=95)
    np.testing.assert_allclose(load_image(tmp_path / "f.jpg"), 128 / 255.0, atol=2 / 255)

    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.png: cannot read image"):
        load_image(tmp_path / "broken.png")


# ----------------------------------------------------------------------------- bad inputs


def _malformed_json(root):
    path = root / "rater2.json"
    path.write_text('{"images": [\n  {"id": 1,, "file_name": "im1.png"}\n]}')


def _missing_image(root):
    (root / "images" / "im3.png").unlink()


def _image_one_rater_only(root):
    _edit(root / "rater2.json", lambda d: d["images"].pop(3))
    _edit(root / "rater2.json", lambda d: d.__setitem__("annotations", [a for a in d["annotations"] if a["image_id"] != 4]))


def _duplicate_image_id(root):
    _edit(root / "rater1.json", lambda d: d["images"].append(dict(d["images"][0], file_name="im2.png")))


def _duplicate_annotation_id(root):
    _edit(root / "rater1.json", lambda d: d["annotations"][3].__setitem__("id", 10))


def _zero_width(root):
    _edit(root / "rater2.json", lambda d: d["annotations"][1].__setitem__("bbox", [5, 5, 0, 4]))


def _outside_image(root):
    _edit(root / "rater1.json", lambda d: d["annotations"][2].__setitem__("bbox", [25, 2, 8.5, 10]))


def _nan_coordinate(root):
    _edit(root / "rater1.json", lambda d: d["annotations"][0].__setitem__("bbox", [2, float("nan"), 10, 10]))


def _string_coordinate(root):
    _edit(root / "rater1.json", lambda d: d["annotations"][0].__setitem__("bbox", [2, "3", 10, 10]))


def _unknown_category(root):
    _edit(root / "rater2.json", lambda d: d["annotations"][0].__setitem__("category_id", 7))


def _consensus_in_rater(root):
    _edit(root / "consensus.json", lambda d: d["images"].append({"id": 2, "file_name": "im2.png", "width": 32, "height": 32}))


BAD_INPUTS = {
    # name: (corruption, file named, expected fragments: item and value)
    "malformed-json": (_malformed_json, "rater2.json", ["malformed JSON at line 2, column 12"]),
    "missing-image": (_missing_image, "rater1.json", ["image 3:", "image file not found", "im3.png"]),
    "image-one-rater": (_image_one_rater_only, "rater2.json", ["image 4:", "'im4.png' is listed by rater1", "not by rater2"]),
    "duplicate-image-id": (_duplicate_image_id, "rater1.json", ["image 1:", "duplicate image id 1"]),
    "duplicate-annotation-id": (_duplicate_annotation_id, "rater1.json", ["annotation 10:", "duplicate annotation id 10"]),
    "non-positive-size": (_zero_width, "rater2.json", ["annotation 20:", "w=0, h=4"]),
    "outside-image": (_outside_image, "rater1.json", ["annotation 20:", "[25, 2, 8.5, 10]", "outside image 2", "32x32"]),
    "nan-coordinate": (_nan_coordinate, "rater1.json", ["annotation 10:", "non-numeric or non-finite", "nan"]),
    "string-coordinate": (_string_coordinate, "rater1.json", ["annotation 10:", "non-numeric", "'3'"]),
    "unknown-category": (_unknown_category, "rater2.json", ["annotation 10:", "unknown category_id 7"]),
    "consensus-in-rater": (_consensus_in_rater, "consensus.json", ["image 2:", "consensus image id 2", "also a rater image"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_clear_error_and_no_output(tmp_path, capsys, case):
    corrupt, file_name, fragments = BAD_INPUTS[case]
    manifest = write_tiny_dataset(tmp_path / "data")
    corrupt(manifest.parent)
    rc, err, out = _run_split(manifest, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("multirater split: error: ")
    assert str(manifest.parent / file_name) in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_box_within_one_pixel_of_the_edge_is_accepted(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data")
    _edit(manifest.parent / "rater1.json", lambda d: d["annotations"][2].__setitem__("bbox", [-0.9, 2, 32.8, 10]))
    assert load_dataset(manifest).boxes("rater1", 2)[0].tolist() == [-0.9, 2, 32.8, 10]


def test_check_reports_every_problem(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")
    root = manifest.parent
    _missing_image(root)
    _zero_width(root)
    _unknown_category(root)
    _consensus_in_rater(root)
    rc = main(["check", "--dataset", str(manifest)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 4, err
    assert all(line.startswith("multirater check: error: ") for line in err)
    joined = "\n".join(err)
    for fragment in ("image file not found", "w=0, h=4", "unknown category_id 7", "consensus image id 2"):
        assert fragment in joined
    with pytest.raises(UserErrors) as info:
        load_dataset(manifest)
    assert len(info.value.errors) == 4


def test_check_finds_image_size_mismatch(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8), mode="L").save(manifest.parent / "images" / "im2.png")
    assert main(["check", "--dataset", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "im2.png: image 2: image is 30x20 px but the annotations say 32x32" in err


def test_check_ok(tiny_dataset, capsys):
    assert main(["check", "--dataset", str(tiny_dataset)]) == 0
    assert "4 multi-rater images, 1 consensus images" in capsys.readouterr().out


def test_bad_manifest(tmp_path, capsys):
    manifest = tmp_path / "dataset.yaml"
    manifest.write_text("images: images\nraters:\n  bad-name: r.json\n")
    (tmp_path / "images").mkdir()
    assert main(["check", "--dataset", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "raters.bad-name: invalid rater name 'bad-name'" in err
    manifest.write_text("images: [unclosed\n")
    assert main(["check", "--dataset", str(manifest)]) == 2
    assert "malformed YAML at line 2" in capsys.readouterr().err


# ----------------------------------------------------------------------------- second passes (repeats)


def _add_repeat(manifest: Path, rater: str = "rater1", image_ids: tuple[int, ...] = (1, 2)) -> Path:
    """A second pass of ``rater`` on ``image_ids``: a copy of their first pass, listed under ``repeats``."""
    root = manifest.parent
    coco = json.loads((root / f"{rater}.json").read_text())
    coco["images"] = [im for im in coco["images"] if im["id"] in image_ids]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in image_ids]
    path = root / f"{rater}_pass2.json"
    path.write_text(json.dumps(coco))
    manifest.write_text(manifest.read_text() + f"repeats:\n  {rater}: {path.name}\n")
    return path


def test_repeats_are_read_apart_from_the_labels(tiny_dataset, capsys):
    path = _add_repeat(tiny_dataset)
    _edit(path, lambda d: d["annotations"][0].update(bbox=[3, 3, 9, 9]))
    ds = load_dataset(tiny_dataset)
    # The second pass is no annotation source: training and evaluation never see it.
    assert ds.sources == ["rater1", "rater2", "consensus"] and ds.rater_names == ["rater1", "rater2"]
    assert ds.repeated_raters == ["rater1"] and ds.repeat_image_ids("rater1") == [1, 2]
    np.testing.assert_array_equal(ds.repeat_boxes("rater1", 1), [[3, 3, 9, 9], [16, 16, 8, 8]])
    np.testing.assert_array_equal(ds.boxes("rater1", 1), [[2, 2, 10, 10], [16, 16, 8, 8]])
    with pytest.raises(UserError, match="'rater2' has no second annotation pass"):
        ds.repeat_boxes("rater2", 1)
    with pytest.raises(UserError, match="image id 3 is not in rater1's second pass"):
        ds.repeat_boxes("rater1", 3)
    assert main(["check", "--dataset", str(tiny_dataset)]) == 0


def test_bad_repeats_are_each_reported(tiny_dataset, capsys):
    path = _add_repeat(tiny_dataset)

    def foreign_images(d):
        d["images"][0]["file_name"] = "im3.png"  # image 1 under another file's name
        d["images"].append({"id": 5, "file_name": "im5.png", "width": 32, "height": 32})  # the consensus image
        d["annotations"][0]["bbox"] = [0, 0, -1, 4]

    _edit(path, foreign_images)
    tiny_dataset.write_text(tiny_dataset.read_text() + "  nobody: n.json\n")
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "repeats.nobody: 'nobody' is not one of the raters (rater1, rater2)" in err
    assert f"{path}: image 1: file_name 'im3.png' differs from rater1's 'im1.png' for the same id" in err
    assert f"{path}: image 5: image id 5 ('im5.png') is not one of rater1's images" in err
    assert f"{path}: annotation 10:" in err  # the bad box, by the shared COCO checks
    path.unlink()
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    assert f"{path}: file not found" in capsys.readouterr().err
    tiny_dataset.write_text(tiny_dataset.read_text().split("repeats:")[0] + "repeats: [rater1_pass2.json]\n")
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    assert "repeats: must map rater names to COCO files" in capsys.readouterr().err


# ----------------------------------------------------------------------------- splits


def _counts_dataset(tmp_path: Path) -> Path:
    """80 multi-rater images; image i has (i * 7) % 23 + 1 boxes for rater 1 and rater 2."""
    manifest = write_tiny_dataset(tmp_path / "data", n_images=80, size=32)

    def boxes(d):
        anns = []
        for im in d["images"]:
            for k in range((im["id"] * 7) % 23 + 1):
                anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": 1, "bbox": [k % 20, 1, 5, 5]})
        d["annotations"] = anns

    _edit(manifest.parent / "rater1.json", boxes)
    _edit(manifest.parent / "rater2.json", boxes)
    return manifest


def test_split_paper_sizes_stratified_and_seeded(tmp_path, capsys):
    manifest = _counts_dataset(tmp_path)
    ds = load_dataset(manifest)
    splits = make_splits(ds, val_fraction=0.1875, seed=42)
    assert (len(splits["train"]), len(splits["val"])) == (65, 15)
    assert splits["test"] == [81]
    assert sorted(splits["train"] + splits["val"]) == list(range(1, 81))
    assert splits["train"] == sorted(splits["train"]) and splits["val"] == sorted(splits["val"])
    # Stratified: the validation images span the count range evenly (one per block of ~5.3 ranks).
    count = {i: (i * 7) % 23 + 1 for i in range(1, 81)}
    val_counts = sorted(count[i] for i in splits["val"])
    all_counts = sorted(count.values())
    assert abs(np.mean(val_counts) - np.mean(all_counts)) < 1.5
    assert val_counts[0] <= all_counts[6] and val_counts[-1] >= all_counts[-7]
    assert make_splits(ds, seed=42) == splits
    assert make_splits(ds, seed=7)["val"] != splits["val"]

    out = tmp_path / "splits.json"
    assert main(["split", "--dataset", str(manifest), "--out", str(out), "--seed", "42"]) == 0
    assert json.loads(out.read_text()) == splits
    assert main(["split", "--dataset", str(manifest), "--out", str(tmp_path / "s2.json"), "--val-fraction", "1.5"]) == 2
    assert "--val-fraction: must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "s2.json").exists()


def test_an_invalid_image_is_reported_once_not_again_for_each_of_its_boxes(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data")
    # Image 1 loses its width; rater 1 has two boxes on it, rater 2 one.
    for name in ("rater1.json", "rater2.json"):
        _edit(manifest.parent / name, lambda d: d["images"][0].pop("width"))
    rc = main(["check", "--dataset", str(manifest)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 2, err  # one line per rater file, none per annotation
    assert all("image 1: width must be a positive integer, got None" in line for line in err)


# ----------------------------------------------------------------------------- manifest and library errors


def test_read_manifest_reads_the_yaml_alone(tmp_path):
    from multirater.data.manifest import read_manifest

    # Neither the COCO files nor the image folder exist: read_manifest must not need them.
    manifest = tmp_path / "ds" / "dataset.yaml"
    manifest.parent.mkdir()
    manifest.write_text("name: lab\nimages: ../pictures\nraters:\n  zoe: z.json\n  adam: sub/a.json\n"
                        "consensus: c.json\n")
    parsed = read_manifest(manifest)
    assert parsed.name == "lab"
    assert parsed.image_dir == (tmp_path / "pictures").resolve()
    assert list(parsed.rater_files) == ["zoe", "adam"]  # the manifest's order, not sorted
    assert parsed.rater_files["adam"] == tmp_path / "ds" / "sub" / "a.json"
    assert parsed.consensus_file == tmp_path / "ds" / "c.json"
    assert list(parsed.files) == ["zoe", "adam", "consensus"]

    manifest.write_text(f"images: {tmp_path / 'abs'}\nraters: {{r1: r1.json}}\n")
    parsed = read_manifest(manifest)
    assert parsed.image_dir == tmp_path / "abs" and parsed.consensus_file is None and parsed.name == "ds"


def test_read_manifest_raises_or_collects(tmp_path):
    from multirater.core.errors import ErrorCollector
    from multirater.data.manifest import read_manifest

    manifest = tmp_path / "dataset.yaml"
    manifest.write_text("images: images\nraters:\n  good: g.json\n  bad-name: b.json\nextra: 1\n")
    with pytest.raises(UserErrors) as info:
        read_manifest(manifest)
    assert sorted(e.item for e in info.value.errors) == ["extra", "raters.bad-name"]
    errors = ErrorCollector()
    parsed = read_manifest(manifest, errors)  # collected, not raised: the caller reports everything at once
    assert len(errors.errors) == 2 and list(parsed.rater_files) == ["good"]


def test_library_errors_name_the_setting_not_the_flag(tiny_dataset):
    with pytest.raises(UserError) as info:
        make_splits(load_dataset(tiny_dataset), val_fraction=0.0)
    assert info.value.item == "val_fraction" and "--" not in str(info.value)


def test_outside_tolerance_boundary_hand_computed():
    from multirater.io.coco import bbox_problem, lies_outside

    # A 32 x 32 image with the 1 px tolerance: corners may reach -1 and 33, not beyond.
    assert not lies_outside(-1.0, -1.0, 33.0, 33.0, 32, 32)
    assert lies_outside(-1.01, 0, 10, 10, 32, 32)
    assert lies_outside(0, 0, 10, 33.01, 32, 32)
    assert lies_outside(0, 0, 32.5, 10, 32, 32, tolerance=0.0)
    assert "non-numeric or non-finite" in bbox_problem([1, float("inf"), 2, 2], empty_ok=False)
    assert "4 finite numbers" in bbox_problem([1, 2, 3], empty_ok=True)
    assert bbox_problem([1, 2, 0, 3], empty_ok=True) is None


def test_a_written_dataset_folder_is_readable_by_the_group(tmp_path):
    """The dataset folder gets the permissions of a plain mkdir under the process umask, not 0700."""
    import os
    import stat

    from multirater.data.synthetic import generate

    old = os.umask(0o022)
    try:
        manifest = generate(tmp_path / "ds", seed=0, images=4, consensus_images=2, raters=2, size=64)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(manifest.parent).st_mode)
    assert mode == 0o755, oct(mode)
