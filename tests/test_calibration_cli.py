"""`multirater calibrate` and `multirater recalibrate` end to end: outputs, determinism, one-line errors with
exit status 2 and no partial output, and no heavy import when the commands are registered."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from multirater.calibration.calibrator_files import read_calibrator
from multirater.calibration.calibrators import fit_calibrator
from multirater.calibration.targets import soft_targets
from multirater.cli import main
from multirater.data.dataset import load_dataset
from multirater.io.detections import read_detections
from test_calibration import hand_detections, write_three_rater_dataset


@pytest.fixture
def files(tmp_path):
    manifest = write_three_rater_dataset(tmp_path / "data")
    val = tmp_path / "val.json"
    val.write_text(json.dumps(hand_detections({"strategy": "rs-r1"}).to_json()))
    test = tmp_path / "test.json"
    test.write_text(json.dumps({"image_ids": [2, 3], "detections": [
        {"image_id": 2, "category_id": 1, "bbox": [40, 40, 10, 10], "score": 0.7},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.2},
        {"image_id": 3, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.4}], "meta": {"strategy": "rs-r1"}}))
    return {"dataset": str(manifest), "val": str(val), "test": str(test), "dir": tmp_path}


def test_calibrate_then_recalibrate(files, capsys):
    out = files["dir"] / "cal.json"
    argv = ["calibrate", "--detections", files["val"], "--dataset", files["dataset"], "--method", "logistic",
            "--target", "soft", "--iou", "0.5", "--out", str(out)]
    assert main(argv) == 0
    first = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == first  # deterministic, bitwise
    assert "logistic on 5 detections, target soft" in capsys.readouterr().out
    # the CLI fits what the library fits on the soft targets
    dets = read_detections(files["val"])
    y = soft_targets(dets, load_dataset(files["dataset"]), 0.5, files["val"])
    assert read_calibrator(out).coefficients == fit_calibrator("logistic", dets.scores, y).coefficients

    calibrated = files["dir"] / "calibrated.json"
    assert main(["recalibrate", "--calibrator", str(out), "--detections", files["test"], "--out", str(calibrated)]) == 0
    result = read_detections(calibrated)
    raw = read_detections(files["test"])
    assert result.image_ids.tolist() == [2, 3] and np.array_equal(result.boxes, raw.boxes)
    assert result.scores == pytest.approx(read_calibrator(out).predict(raw.scores), abs=0)
    assert result.meta["calibration"]["method"] == "logistic" and result.meta["calibration"]["target"] == "soft"
    assert result.meta["calibration"]["fitted_on"] == files["val"] and result.meta["strategy"] == "rs-r1"


def test_hard_target_defaults_to_the_models_rater(files):
    out = files["dir"] / "cal.json"
    assert main(["calibrate", "--detections", files["val"], "--dataset", files["dataset"], "--method", "isotonic",
                 "--target", "hard", "--out", str(out)]) == 0
    fitted = read_calibrator(out).fitted
    assert fitted["reference"] == "r1" and fitted["mean_target"] == pytest.approx(2 / 5)


def test_detection_aware_needs_image_sizes(files, capsys):
    cal = files["dir"] / "cal.json"
    assert main(["calibrate", "--detections", files["val"], "--dataset", files["dataset"], "--method",
                 "detection-aware", "--target", "soft", "--out", str(cal)]) == 0
    out = files["dir"] / "calibrated.json"
    _expect_error(["recalibrate", "--calibrator", str(cal), "--detections", files["test"], "--out", str(out)],
                  capsys, out, f"{cal}: a detection-aware calibrator needs the image sizes: give --dataset or --images")
    _expect_error(["recalibrate", "--calibrator", str(cal), "--detections", files["test"], "--out", str(out),
                   "--dataset", files["dataset"]], capsys, out, "the size of image 3 is unknown")

    # a folder of new images: sizes come from meta.file_names and the image headers
    folder = files["dir"] / "new"
    folder.mkdir()
    Image.fromarray(np.zeros((80, 100), dtype=np.uint8)).save(folder / "x.png")
    new = files["dir"] / "new.json"
    new.write_text(json.dumps({"image_ids": [7], "meta": {"file_names": {"7": "x.png"}}, "detections": [
        {"image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]}))
    assert main(["recalibrate", "--calibrator", str(cal), "--detections", str(new), "--out", str(out),
                 "--images", str(folder)]) == 0
    # the same box on image 1 (also 100 x 80 px) of the dataset gets the same calibrated score
    same = read_detections(out).scores[0]
    assert same == pytest.approx(read_calibrator(cal).predict(np.array([0.9]), np.array([[0.2, 0.25, 0.2, 0.25]]))[0],
                                 abs=1e-15)


def _expect_error(argv, capsys, out, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_bad_inputs_are_one_line_errors_without_output(files, capsys):
    out = files["dir"] / "cal.json"
    common = ["--dataset", files["dataset"], "--method", "logistic", "--out", str(out)]
    _expect_error(["calibrate", "--detections", files["test"], "--target", "soft", *common], capsys, out,
                  f"{files['test']}: image 2 is labelled by none of the raters")
    _expect_error(["calibrate", "--detections", files["val"], "--target", "hard", "--reference", "r9", *common],
                  capsys, out, "unknown reference 'r9' (known: r1, r2, r3, consensus, majority)")
    _expect_error(["calibrate", "--detections", files["val"], "--target", "soft", "--reference", "r1", *common],
                  capsys, out, "--reference applies to --target hard only")
    _expect_error(["calibrate", "--detections", files["val"], "--target", "hard", "--reference", "r3", *common],
                  capsys, out, f"{files['val']}: no detection matches the reference")
    missing = files["dir"] / "missing.json"
    _expect_error(["calibrate", "--detections", str(missing), "--target", "soft", *common], capsys, out,
                  f"{missing}: file not found")

    calibrated = files["dir"] / "calibrated.json"
    assert main(["calibrate", "--detections", files["val"], "--target", "soft", *common]) == 0
    assert main(["recalibrate", "--calibrator", str(out), "--detections", files["test"],
                 "--out", str(calibrated)]) == 0
    twice = files["dir"] / "twice.json"
    _expect_error(["recalibrate", "--calibrator", str(out), "--detections", str(calibrated), "--out", str(twice)],
                  capsys, twice, f"{calibrated}: already calibrated (logistic)")
    bad = files["dir"] / "bad.json"
    bad.write_text(json.dumps({"format": "multirater-calibrator", "method": "logistic", "features": ["logit"],
                               "coefficients": [1.0], "intercept": None, "logit_clip": 1e-6}))
    _expect_error(["recalibrate", "--calibrator", str(bad), "--detections", files["test"], "--out", str(twice)],
                  capsys, twice, f"{bad}: intercept: must be a finite number, got None")


def test_calibration_commands_do_not_import_heavy_libraries():
    code = (
        "import sys, argparse, multirater.calibration.commands as c; "
        "c.register(argparse.ArgumentParser().add_subparsers()); "
        "heavy = [m for m in ('sklearn', 'torch', 'pandas', 'matplotlib', 'scipy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
