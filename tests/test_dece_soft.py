"""D-ECE-soft (``multirater evaluate --soft-gt``): a hand-computed case, its bootstrap resamples against the
resampled detections evaluated one by one, and the error on label sets of other images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multirater.cli import main
from multirater.evaluation.evaluate import evaluate
from multirater.io.detections import parse_detections


def coco(boxes_by_image: dict[int, list[list[float]]]) -> dict:
    annotations = [{"id": k, "image_id": image_id, "category_id": 1, "bbox": box}
                   for k, (image_id, box) in enumerate(
                       ((i, b) for i, boxes in boxes_by_image.items() for b in boxes), start=1)]
    return {"images": [{"id": i, "width": 100, "height": 100} for i in boxes_by_image],
            "annotations": annotations, "categories": [{"id": 1, "name": "organoid"}]}


def detections(rows: list[tuple[int, list[float], float]]) -> list[dict]:
    return [{"image_id": i, "category_id": 1, "bbox": box, "score": score} for i, box, score in rows]


A, B, C, D = [0, 0, 10, 10], [50, 50, 10, 10], [80, 80, 10, 10], [30, 30, 10, 10]
CONSENSUS = coco({1: [A]})
RATER1 = coco({1: [A, B]})
RATER2 = coco({1: [A, D]})
# d1 on A (both raters: target 1), d2 on B (rater 1 only: 1/2), d3 on C (nobody: 0), d4 a second box on A
# (A is taken by d1, which scores higher, in both raters' sets: 0), d5 on D (rater 2 only: 1/2).
DETECTIONS = detections([(1, A, 0.9), (1, B, 0.6), (1, C, 0.15), (1, [1, 0, 10, 10], 0.85), (1, D, 0.65)])


def _value(result: dict, metric: str, iou: float) -> float:
    return next(m["value"] for m in result["metrics"] if m["metric"] == metric and m["iou"] == iou)


def test_soft_dece_hand_computed():
    result = evaluate(CONSENSUS, parse_detections(DETECTIONS), bootstrap=0, soft_gt=[RATER1, RATER2],
                      soft_gt_names=["r1.json", "r2.json"], dece_reference_draws=0)
    # 10 bins: d1 in bin 9, d4 in 8, d2 and d5 share bin 6, d3 in bin 1.
    # soft targets 1, 0, 1/2 + 1/2, 0: (|1 - .9| + |0 - .85| + |1 - 1.25| + |0 - .15|) / 5 = 1.35 / 5
    # consensus: d1 matched only: (|1 - .9| + |0 - .85| + |0 - 1.25| + |0 - .15|) / 5 = 2.35 / 5
    for iou in (0.5, 0.75):
        assert _value(result, "D-ECE-soft", iou) == pytest.approx(1.35 / 5)
        assert _value(result, "D-ECE", iou) == pytest.approx(2.35 / 5)
    assert [m["metric"] for m in result["metrics"]][-4:] == ["D-ECE", "D-ECE-soft", "D-ECE", "D-ECE-soft"]
    assert result["settings"]["soft_gt"] == ["r1.json", "r2.json"]
    # one label set: D-ECE-soft is D-ECE against it
    alone = evaluate(RATER1, parse_detections(DETECTIONS), bootstrap=0, soft_gt=[RATER1], dece_reference_draws=0)
    assert _value(alone, "D-ECE-soft", 0.5) == _value(alone, "D-ECE", 0.5)


def test_without_soft_label_sets_nothing_changes():
    plain = evaluate(CONSENSUS, parse_detections(DETECTIONS), bootstrap=20)
    assert "D-ECE-soft" not in {m["metric"] for m in plain["metrics"]} and "soft_gt" not in plain["settings"]


def _plain_soft_dece(dets: list[dict], label_sets: list[dict], iou: float, bins: int = 10) -> float:
    """Independent reference: per image and label set, greedy matching in descending score order, then the
    binned |sum of (target - score)| / N."""
    def iou_of(a, b):
        ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)

    targets = np.zeros(len(dets))
    for label_set in label_sets:
        for image_id in {d["image_id"] for d in dets}:
            boxes = [a["bbox"] for a in label_set["annotations"] if a["image_id"] == image_id]
            taken = set()
            mine = sorted((k for k, d in enumerate(dets) if d["image_id"] == image_id), key=lambda k: -dets[k]["score"])
            for k in mine:
                best, best_iou = None, iou
                for j, box in enumerate(boxes):
                    value = iou_of(dets[k]["bbox"], box)
                    if j not in taken and value >= best_iou:
                        best, best_iou = j, value
                if best is not None:
                    taken.add(best)
                    targets[k] += 1 / len(label_sets)
    scores = np.array([d["score"] for d in dets])
    bin_of = np.minimum((scores * bins).astype(int), bins - 1)
    return sum(abs((targets - scores)[bin_of == b].sum()) for b in range(bins)) / len(dets)


def test_soft_dece_resamples_are_the_test_images_redrawn():
    """Each bootstrap value equals D-ECE-soft of the resampled images' detections (an image drawn twice counts
    twice), computed by a plain reference; the resamples are those of every other metric (same seed)."""
    consensus = coco({1: [A], 2: [B, C]})
    raters = [coco({1: [A, B], 2: [B]}), coco({1: [A, D], 2: [B, C]})]
    dets = detections([(1, A, 0.9), (1, B, 0.6), (1, C, 0.15), (1, D, 0.65), (2, B, 0.45), (2, C, 0.72),
                       (2, [80, 81, 10, 10], 0.33)])
    result = evaluate(consensus, parse_detections(dets), bootstrap=30, seed=3, soft_gt=raters)
    record = next(m for m in result["metrics"] if m["metric"] == "D-ECE-soft" and m["iou"] == 0.5)
    assert record["value"] == pytest.approx(_plain_soft_dece(dets, raters, 0.5))
    draws = np.random.default_rng(3).integers(0, 2, size=(30, 2))  # the documented resampling
    for drawn, value in zip(draws, record["values"]):
        redrawn = [dict(d, image_id=10 * k + d["image_id"]) for k, image in enumerate(drawn)
                   for d in dets if d["image_id"] == image + 1]
        sets = [{"annotations": [dict(a, image_id=10 * k + a["image_id"]) for k, image in enumerate(drawn)
                                 for a in s["annotations"] if a["image_id"] == image + 1]} for s in raters]
        assert value == pytest.approx(_plain_soft_dece(redrawn, sets, 0.5))


def test_command_writes_soft_dece_and_refuses_label_sets_of_other_images(tmp_path, capsys):
    paths = {}
    for name, data in (("gt", CONSENSUS), ("r1", RATER1), ("r2", RATER2), ("other", coco({1: [A], 2: [B]})),
                       ("pred", DETECTIONS)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--gt", str(paths["gt"]), "--pred", str(paths["pred"]), "--bootstrap", "10"]
    assert main([*args, "--out", str(out), "--soft-gt", str(paths["r1"]), str(paths["r2"])]) == 0
    metrics = json.loads(out.read_text())
    assert _value(metrics, "D-ECE-soft", 0.5) == pytest.approx(0.27)
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    assert main([*args, "--out", str(bad), "--soft-gt", str(paths["r1"]), str(paths["other"])]) == 2
    err = capsys.readouterr().err
    assert str(paths["other"]) in err and "its images differ from the ground truth's" in err
    assert "has 1 image(s) it has not (e.g. id 2)" in err and not bad.exists()
