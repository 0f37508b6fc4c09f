"""The shared foundation: IoU against pycocotools, strict readers, atomic writers, detections files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from multirater.core.boxes import iou_matrix, xywh_to_xyxy, xyxy_to_xywh
from multirater.io.detections import Detections, parse_detections, read_detections, write_detections
from multirater.core.errors import UserError
from multirater.core.files import atomic_path, read_json, read_yaml, write_json


def test_iou_matrix_equals_pycocotools():
    rng = np.random.default_rng(3)
    a = np.column_stack([rng.uniform(0, 50, (40, 2)), rng.uniform(0.5, 30, (40, 2))])
    b = np.column_stack([rng.uniform(0, 50, (25, 2)), rng.uniform(0.5, 30, (25, 2))])
    reference = mask_utils.iou(a.tolist(), b.tolist(), [0] * len(b))
    np.testing.assert_allclose(iou_matrix(a, b), reference, rtol=0, atol=1e-12)


def test_iou_hand_computed_and_empty():
    # Two 2x2 squares overlapping in a 1x2 strip: IoU = 2 / (4 + 4 - 2).
    assert iou_matrix([[0, 0, 2, 2]], [[1, 0, 2, 2]])[0, 0] == pytest.approx(1 / 3)
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_box_conversions_round_trip():
    boxes = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(xywh_to_xyxy(boxes), [[1, 2, 4, 6]])
    np.testing.assert_array_equal(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes)


def test_read_json_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(UserError) as err:
        read_json(path)
    assert str(path) in str(err.value) and "line 4, column 1" in str(err.value)


def test_read_yaml_reports_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(UserError, match=r"bad\.yaml: malformed YAML at line"):
        read_yaml(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_write_json_refuses_nan_without_leaving_a_file(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(ValueError):
        write_json(target, {"a": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_detections_round_trip_keeps_images_without_detections(tmp_path):
    dets = parse_detections(
        {
            "image_ids": [3, 1, 2],
            "detections": [
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, "n_models": 2},
            ],
        }
    )
    assert dets.image_ids.tolist() == [1, 2, 3]
    path = tmp_path / "d.json"
    write_detections(path, dets)
    again = read_detections(path)
    assert again.image_ids.tolist() == [1, 2, 3]
    assert again.to_records() == dets.to_records()
    assert json.loads(path.read_text())["detections"][0]["n_models"] == 2


def test_bare_coco_results_list_is_accepted():
    dets = parse_detections([{"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1.0}])
    assert dets.image_ids.tolist() == [7] and len(dets) == 1
    assert len(Detections.empty([1, 2])) == 0


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, "missing key 'image_id'"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")}, "finite"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.5}, "[0, 1]"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, "negative"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}, "4 finite numbers"),
    ],
)
def test_bad_detection_names_file_item_and_problem(record, problem):
    with pytest.raises(UserError) as err:
        parse_detections([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.1}, record], "p.json")
    message = str(err.value)
    assert message.startswith("p.json: detection 1: ") and problem in message


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
