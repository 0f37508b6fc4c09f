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


# --- fast JSON: what the standard library reads, and exact float round trips ------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, -0.0, 1e-310, 18446744073709551616, "x\\u00e9"], "b": {"c": null, "d": true}}',
        "[NaN, Infinity, -Infinity]",  # the standard library reads these; a detection check then refuses them
        '{"a": 1, "a": 2}',
        '["\\ud800"]',
        "  [1]\r\n",
    ],
)
def test_read_json_reads_what_the_standard_library_reads(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_bytes(text.encode("utf-8"))
    got, expected = read_json(path), json.loads(text)
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and int vs float must match too


@pytest.mark.parametrize(
    "raw, where",
    [(b'{"a": 1,\n "b": }', "line 2, column 7"), (b"\xef\xbb\xbf[1]", "line 1, column 1"), (b"[1, 2", "line 1")],
)
def test_read_json_errors_name_line_and_column(tmp_path, raw, where):
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    with pytest.raises(UserError) as err:
        read_json(path)
    assert str(err.value).startswith(f"{path}: malformed JSON at {where}")


def test_read_json_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'["\xff"]')
    with pytest.raises(UserError, match="not a UTF-8 text file"):
        read_json(path)


def _random_detections(rng: np.random.Generator, n: int, extra: bool) -> Detections:
    boxes = np.column_stack([rng.uniform(-5, 3000, (n, 2)), rng.uniform(0, 400, (n, 2))])
    boxes[: n // 10] = np.float32(boxes[: n // 10])  # float32 predictions written as float64
    boxes[n // 10: n // 5, 2] = 0.0
    scores = rng.random(n)
    scores[:3] = [0.0, 1.0, 5e-324]
    records = [
        {"n_models": int(k), "score_std": float(s), "votes": {"r1": int(k), "r2": 0}}
        for k, s in zip(rng.integers(1, 5, n), rng.random(n))
    ]
    return Detections(
        image_ids=np.arange(1, 8), image_id=rng.integers(1, 7, n), category_id=rng.integers(1, 3, n),
        boxes=boxes, scores=scores, extra=records if extra else None, meta={"strategy": "ls", "note": None},
    )


@pytest.mark.parametrize("extra", [False, True])
def test_detections_written_by_the_standard_library_and_by_write_detections_read_the_same(tmp_path, extra):
    dets = _random_detections(np.random.default_rng(7), 2500, extra)
    ours, reference = tmp_path / "ours.json", tmp_path / "reference.json"
    write_detections(ours, dets)
    reference.write_text(json.dumps(dets.to_json(), indent=None, allow_nan=False) + "\n")
    assert json.loads(ours.read_text()) == json.loads(reference.read_text())  # the same JSON values
    a, b = read_detections(ours), read_detections(reference)
    for got in (a, b):
        for name in ("image_ids", "image_id", "category_id", "boxes", "scores"):
            np.testing.assert_array_equal(getattr(got, name), getattr(dets, name), strict=False)
        assert got.boxes.tobytes() == np.asarray(dets.boxes, dtype=np.float64).tobytes()  # bit for bit
        assert got.scores.tobytes() == dets.scores.tobytes()
        assert got.meta == dets.meta and got.extra == dets.extra


def test_write_detections_refuses_nan_without_leaving_a_file(tmp_path):
    dets = _random_detections(np.random.default_rng(1), 10, extra=True)
    for broken in ("scores", "boxes", "extra"):
        bad = _random_detections(np.random.default_rng(1), 10, extra=True)
        if broken == "extra":
            bad.extra[4]["score_std"] = math.nan
        else:
            getattr(bad, broken).reshape(-1)[3] = math.nan
        with pytest.raises(ValueError):
            write_detections(tmp_path / "x.json", bad)
        assert list(tmp_path.iterdir()) == []
    write_detections(tmp_path / "x.json", dets)
    assert read_detections(tmp_path / "x.json").extra == dets.extra


@pytest.mark.parametrize(
    "value, problem",
    [
        ('{"image_id": true, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}', "image_id must be an integer"),
        ('{"image_id": 1, "category_id": 1.0, "bbox": [0, 0, 1, 1], "score": 0.5}', "category_id must be an integer"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, "0", 1, 1], "score": 0.5}', "4 finite numbers"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, false], "score": 0.5}', "4 finite numbers"),
        ('{"image_id": 1, "category_id": 1, "bbox": [[0], 0, 1, 1], "score": 0.5}', "4 finite numbers"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1, 2], "score": 0.5}', "4 finite numbers"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "0.5"}', "score must be a finite number"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": [0.5]}', "score must be a finite number"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": Infinity}', "score must be a finite"),
        ('{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}', "missing key 'score'"),
        ("[1, 2]", "must be an object"),
    ],
)
def test_bad_detection_in_a_file_names_file_item_and_problem(tmp_path, value, problem):
    # a long file, so that the column checks (not a record-by-record walk) meet the bad record first
    good = '{"image_id": 1, "category_id": 1, "bbox": [0.5, 0, 1, 1e3], "score": 0.1}'
    path = tmp_path / "p.json"
    path.write_text("[" + ", ".join([good] * 500 + [value] + [good] * 10) + "]")
    with pytest.raises(UserError) as err:
        read_detections(path)
    message = str(err.value)
    assert message.startswith(f"{path}: detection 500: ") and problem in message, message


def test_extra_columns_read_like_the_dicts_they_stand_for(tmp_path):
    from multirater.io.extra_columns import ExtraColumns

    counts = np.array([[2, 0], [1, 1], [0, 3]])
    columns = ExtraColumns({"n_models": np.array([2, 2, 3]), "score_std": np.array([0.5, 0.25, 0.0])},
                           {"votes": (counts, ["r1", "r2"])})
    dicts = [{"n_models": 2, "score_std": 0.5, "votes": {"r1": 2, "r2": 0}},
             {"n_models": 2, "score_std": 0.25, "votes": {"r1": 1, "r2": 1}},
             {"n_models": 3, "score_std": 0.0, "votes": {"r1": 0, "r2": 3}}]
    assert len(columns) == 3 and list(columns) == dicts and columns == dicts
    assert columns[1] == dicts[1] and columns[-1] == dicts[-1] and list(columns[1:]) == dicts[1:]
    assert type(columns[0]["n_models"]) is int and type(columns[0]["score_std"]) is float
    base = dict(image_ids=np.array([1]), image_id=np.ones(3, dtype=np.int64), category_id=np.ones(3, dtype=np.int64),
                boxes=np.ones((3, 4)), scores=np.array([0.5, 0.25, 1.0]))
    write_detections(tmp_path / "columns.json", Detections(**base, extra=columns))
    write_detections(tmp_path / "dicts.json", Detections(**base, extra=dicts))
    assert (tmp_path / "columns.json").read_bytes() == (tmp_path / "dicts.json").read_bytes()
    assert read_detections(tmp_path / "columns.json").extra == dicts
