"""The engine's command line: fuse -> evaluate -> compare on small files, and one clear error (file, item,
exit 2, no output) for malformed input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from multirater.cli import main
from multirater.io.detections import read_detections

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100},
               {"id": 5, "width": 100, "height": 100}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 30, 20], "area": 600},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 60, 10, 10], "area": 100},
    ],
    "categories": [{"id": 1, "name": "organoid"}],
}


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for m in range(3):
        dets = []
        for ann in GT["annotations"]:
            box = (np.array(ann["bbox"]) + rng.uniform(-0.5, 0.5, 4)).tolist()  # IoU > 0.8
            dets.append({"image_id": ann["image_id"], "category_id": 1, "bbox": box, "score": float(rng.random())})
        dets.append({"image_id": 1, "category_id": 1, "bbox": [70, 5, 10, 10], "score": float(rng.random())})
        paths.append(_write(tmp_path / f"m{m}.json", {"format": "multirater-detections", "image_ids": [1, 2, 5],
                                                       "detections": dets, "meta": {"strategy": "ls"}}))
    return tmp_path, paths, _write(tmp_path / "gt.json", GT)


def test_fuse_evaluate_compare(files, capsys):
    tmp, preds, gt = files
    fused = tmp / "fused.json"
    assert main(["fuse", "--iou", "0.5", "--out", str(fused), *preds, "--sources", "r1", "r1", "r2"]) == 0
    ens = read_detections(fused)
    assert ens.image_ids.tolist() == [1, 2, 5]
    # three objects and one repeated false positive, each found by all three models
    assert len(ens) == 4
    assert all(e["votes"] == {"r1": 2, "r2": 1} and e["n_models"] == 3 for e in ens.extra)
    assert ens.meta["strategy"] == "ls" and ens.meta["fusion"]["inputs"] == preds

    out_a, out_b = tmp / "a.json", tmp / "b.json"
    assert main(["evaluate", "--gt", gt, "--pred", str(fused), "--out", str(out_a), "--bootstrap", "10"]) == 0
    assert main(["evaluate", "--gt", gt, "--pred", preds[0], "--out", str(out_b), "--bootstrap", "10",
                 "--matching", "hungarian", "--iou", "0.5", "0.75", "--bins", "5", "--max-dets", "50"]) == 0
    metrics = json.loads(out_a.read_text())
    assert set(metrics) == {"settings", "n_images", "n_detections", "n_gt", "metrics", "reliability",
                            "dece_reference"}
    assert metrics["n_images"] == 3 and metrics["n_gt"] == 3 and metrics["n_detections"] == len(ens)
    assert [(r["metric"], r["iou"]) for r in metrics["metrics"]] == [
        ("mAP", None), ("AP50", None), ("AP75", None), ("mAR", None), ("D-ECE", 0.5), ("D-ECE", 0.75)]
    assert all(len(r["values"]) == 10 for r in metrics["metrics"])
    assert set(metrics["reliability"]) == {"0.5", "0.75"}
    assert json.loads(out_b.read_text())["settings"]["matching"] == "hungarian"

    csv = tmp / "cmp.csv"
    assert main(["compare", str(out_a), str(out_b), "--out", str(csv)]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == "metric,iou,value_a,value_b,diff_mean,diff_std,diff_p2.5,diff_p97.5,frac_a_better,p_value"
    assert len(lines) == 7
    assert "mAP" in capsys.readouterr().out


def _expect_error(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"multirater {argv[0]}: error: ")
    for needle in needles:
        assert needle in err[0]


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}, "missing key 'score'"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")}, "score"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.5}, "[0, 1]"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, "negative"),
    ],
)
def test_malformed_prediction_file(files, capsys, bad, needle):
    tmp, preds, gt = files
    broken = tmp / "broken.json"
    broken.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, bad]))
    out = tmp / "out.json"
    _expect_error(["evaluate", "--gt", gt, "--pred", str(broken), "--out", str(out)], capsys,
                  str(broken), "detection 1", needle)
    _expect_error(["fuse", "--out", str(out), preds[0], str(broken)], capsys, str(broken), "detection 1", needle)
    assert not out.exists() and not list(tmp.glob(".out.json*"))


def test_detections_outside_the_ground_truth_and_bad_options(files, capsys):
    tmp, preds, gt = files
    stray = _write(tmp / "stray.json", [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}])
    out = tmp / "out.json"
    _expect_error(["evaluate", "--gt", gt, "--pred", stray, "--out", str(out)], capsys, stray, "detection 0",
                  "image_id 9")
    _expect_error(["fuse", "--out", str(out), *preds, "--sources", "r1"], capsys, "--sources")
    _expect_error(["evaluate", "--gt", str(tmp / "missing.json"), "--pred", preds[0], "--out", str(out)], capsys,
                  "missing.json", "not found")
    (tmp / "a.json").write_text(json.dumps({"settings": {"seed": 0, "bootstrap": 2}, "n_images": 3,
                                            "metrics": [{"metric": "mAP", "iou": None, "value": 1, "values": [1, 1]}]}))
    (tmp / "b.json").write_text(json.dumps({"settings": {"seed": 1, "bootstrap": 2}, "n_images": 3,
                                            "metrics": [{"metric": "mAP", "iou": None, "value": 1, "values": [1, 1]}]}))
    _expect_error(["compare", str(tmp / "a.json"), str(tmp / "b.json"), "--out", str(out)], capsys, "seed")
    assert not out.exists()


def test_engine_commands_import_no_heavy_library():
    code = ("import sys, multirater.ensembles.commands, multirater.evaluation.commands; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("flags,needle", [(["--bins", "0"], "--bins must be at least 1, got 0"),
                                          (["--iou", "0.5", "1.5"], "--iou must lie in (0, 1]"),
                                          (["--max-dets", "0"], "--max-dets must be at least 1"),
                                          (["--bootstrap", "-2"], "--bootstrap must be 0 or more")])
def test_evaluate_names_the_flag_out_of_range(files, capsys, flags, needle):
    tmp, preds, gt = files
    out = tmp / "out.json"
    _expect_error(["evaluate", "--gt", gt, "--pred", preds[0], "--out", str(out), *flags], capsys, needle)
    assert not out.exists()


def test_evaluate_writes_the_identity_of_the_detections(files):
    tmp, preds, gt = files
    identity = {"strategy": "rs-r1", "config_id": "00c0ffee"}
    data = json.loads(open(preds[0]).read())
    data["meta"]["identity"] = identity
    pred = _write(tmp / "with_identity.json", data)
    out = tmp / "out.json"
    assert main(["evaluate", "--gt", gt, "--pred", pred, "--out", str(out), "--bootstrap", "2"]) == 0
    assert json.loads(out.read_text())["identity"] == identity
