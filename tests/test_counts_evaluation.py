"""Do the expected counts hold: per-image expected count, interval and errors on a hand-computed case, and
`multirater count-accuracy` end to end."""

from __future__ import annotations

import json
import math

import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.evaluation.counts import count_accuracy, true_counts
from multirater.io.detections import parse_detections
from test_calibration import write_three_rater_dataset


def _det(image_id, score):
    return {"image_id": image_id, "category_id": 1, "bbox": [0, 0, 5, 5], "score": score}


# image 1: scores 0.9 0.5 0.2, 2 objects; image 2: scores 1 1, no object; image 3: no detection, 1 object
DETECTIONS = {"image_ids": [1, 2, 3], "detections": [_det(1, 0.9), _det(1, 0.5), _det(1, 0.2), _det(2, 1.0),
                                                     _det(2, 1.0)]}
GT = {"images": [{"id": i, "file_name": f"{i}.png", "width": 10, "height": 10} for i in (1, 2, 3, 4)],
      "annotations": [{"id": k, "image_id": i, "category_id": 1, "bbox": [0, 0, 3, 3]}
                      for k, i in enumerate([1, 1, 3])],
      "categories": [{"id": 1, "name": "organoid"}]}


def test_count_accuracy_by_hand():
    dets = parse_detections(DETECTIONS)
    true = true_counts(GT, dets.image_ids, "gt.json")
    assert true.tolist() == [2, 0, 1]
    result = count_accuracy(dets, true, threshold=0.5, z=1.96)
    one, two, three = result["images"]
    # image 1: E = 1.6, var = .09 + .25 + .16 = .5, interval 1.6 +/- 1.96 sqrt(.5) = [0.214, 2.986] holds 2
    assert one["expected_count"] == pytest.approx(1.6) and one["count_std"] == pytest.approx(math.sqrt(0.5))
    assert one["lower"] == pytest.approx(1.6 - 1.96 * math.sqrt(0.5)) and one["covered"]
    assert one["n_above_threshold"] == 2 and one["error_threshold"] == 0
    assert one["error_expected"] == pytest.approx(-0.4)
    # image 2: E = 2 with sd 0: [2, 2] misses 0; image 3: E = 0 with sd 0 misses 1
    assert two["expected_count"] == 2 and two["count_std"] == 0 and not two["covered"]
    assert three["expected_count"] == 0 and three["n_detections"] == 0 and not three["covered"]
    summary = result["summary"]
    assert summary["n_images"] == 3
    assert summary["mae_expected"] == pytest.approx((0.4 + 2 + 1) / 3)
    assert summary["mae_threshold"] == pytest.approx((0 + 2 + 1) / 3)
    assert summary["coverage"] == pytest.approx(1 / 3)
    assert summary["mean_true_count"] == pytest.approx(1.0) and summary["mean_expected_count"] == pytest.approx(3.6 / 3)
    # the threshold is inclusive: at 0.9 image 1 counts one detection
    assert count_accuracy(dets, true, threshold=0.9)["summary"]["mae_threshold"] == pytest.approx((1 + 2 + 1) / 3)


def test_count_accuracy_errors():
    dets = parse_detections({"image_ids": [1, 5], "detections": []})
    with pytest.raises(UserError, match=r"gt.json: image ids \[5\] are not labelled by the reference"):
        true_counts(GT, dets.image_ids, "gt.json")
    with pytest.raises(UserError, match="z: must be a positive number"):
        count_accuracy(parse_detections(DETECTIONS), [2, 0, 1], z=0.0)
    with pytest.raises(UserError, match="3 true counts for 2 images"):
        count_accuracy(dets, [2, 0, 1])


def test_count_accuracy_command(tmp_path, capsys):
    gt, pred, out = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "counts.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps({**DETECTIONS, "meta": {"identity": {"strategy": "ls", "config_id": "0123abcd"}}}))
    assert main(["count-accuracy", "--detections", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["identity"] == {"strategy": "ls", "config_id": "0123abcd"} and data["calibration"] is None
    assert data["summary"]["coverage"] == pytest.approx(1 / 3) and len(data["images"]) == 3
    assert "MAE 1.13 (threshold 0.5: 1.00); coverage 0.33" in capsys.readouterr().out

    # with a dataset: the consensus labels image 2 with one box
    manifest = write_three_rater_dataset(tmp_path / "data")
    pred.write_text(json.dumps({"image_ids": [2], "detections": [_det(2, 0.5)]}))
    assert main(["count-accuracy", "--detections", str(pred), "--dataset", str(manifest), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["images"][0]["true_count"] == 1
    out.unlink()
    assert main(["count-accuracy", "--detections", str(pred), "--dataset", str(manifest), "--reference", "r1",
                 "--out", str(out)]) == 2
    assert "image ids [2] are not labelled by the reference" in capsys.readouterr().err and not out.exists()
    assert main(["count-accuracy", "--detections", str(pred), "--dataset", str(manifest), "--reference", "r7",
                 "--out", str(out)]) == 2
    assert "--reference 'r7' is not a source of the dataset" in capsys.readouterr().err and not out.exists()
