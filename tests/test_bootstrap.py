"""Bootstrap: per-resample metrics equal pycocotools (and netcal's D-ECE definition) on the resample built as a
dataset with every repeated image as its own image id; summaries; paired comparison."""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import coco_flags, coco_reference, netcal_dece, random_scene, values

from multirater.evaluation.bootstrap import compare, resample_counts, resample_indices
from multirater.io.detections import parse_detections
from multirater.core.errors import UserError
from multirater.evaluation.evaluate import evaluate


def expand(gt: dict, dets: list[dict], positions) -> tuple[dict, list[dict]]:
    """The resample as a dataset: the j-th drawn image (ascending id order) becomes image id j + 1."""
    ids = sorted(im["id"] for im in gt["images"])
    image = {im["id"]: im for im in gt["images"]}
    images, anns, out = [], [], []
    for j, p in enumerate(positions):
        old, new = ids[p], j + 1
        images.append({**image[old], "id": new})
        anns += [{**a, "id": len(anns) + k + 1, "image_id": new}
                 for k, a in enumerate(a for a in gt["annotations"] if a["image_id"] == old)]
        out += [{**d, "image_id": new} for d in dets if d["image_id"] == old]
    return {**gt, "images": images, "annotations": anns}, out


def test_resamples_are_defined_by_the_seed():
    expected = np.random.default_rng(7).integers(0, 5, size=(3, 5))
    np.testing.assert_array_equal(resample_indices(5, 3, 7), expected)
    counts = resample_counts(expected, 5)
    for b in range(3):
        np.testing.assert_array_equal(counts[b], np.bincount(expected[b], minlength=5))


@pytest.mark.parametrize("seed,quantize", [(0, None), (1, 4), (2, None), (3, 10)])
def test_each_resample_equals_pycocotools_on_the_expanded_dataset(seed, quantize):
    gt, dets = random_scene(seed, n_images=5, quantize=quantize)
    n_resamples = 6
    result = evaluate(gt, parse_detections(dets), iou_thresholds=(0.5, 0.75), bins=5, bootstrap=n_resamples,
                      seed=seed, max_dets=4 if seed == 2 else 100)
    got = values(result)
    positions = resample_indices(len(gt["images"]), n_resamples, seed)
    for b in range(n_resamples):
        gt_b, dets_b = expand(gt, dets, positions[b])
        ref = coco_reference(gt_b, dets_b, 4 if seed == 2 else 100)
        for name in ("mAP", "AP50", "AP75", "mAR"):
            value = got[(name, None)]["values"][b]
            if np.isnan(ref[name]):
                assert value is None
            else:
                assert value == pytest.approx(ref[name], abs=1e-9), (b, name)
        scores = np.array([d["score"] for d in dets_b])
        for thr in (0.5, 0.75):
            value = got[("D-ECE", thr)]["values"][b]
            if not dets_b:
                assert value is None
                continue
            assert value == pytest.approx(netcal_dece(scores, coco_flags(gt_b, dets_b, thr), 5), abs=1e-12)


def test_summary_of_resamples():
    gt, dets = random_scene(4)
    rec = values(evaluate(gt, parse_detections(dets), bootstrap=30, seed=1))[("mAP", None)]
    v = np.array(rec["values"], dtype=float)
    assert len(v) == 30
    assert rec["mean"] == pytest.approx(v.mean())
    assert rec["std"] == pytest.approx(np.sqrt(((v - v.mean()) ** 2).sum() / 29))  # ddof = 1
    assert rec["p2.5"] == pytest.approx(np.percentile(v, 2.5))
    assert rec["p97.5"] == pytest.approx(np.percentile(v, 97.5))


def _metrics(seed, values_by_metric):
    return {
        "settings": {"seed": seed, "bootstrap": 4},
        "n_images": 10,
        "metrics": [{"metric": m, "iou": iou, "value": v[0], "values": v} for (m, iou), v in values_by_metric.items()],
    }


def test_compare_hand_computed():
    a = _metrics(0, {("mAP", None): [0.5, 0.6, 0.4, 0.7], ("D-ECE", 0.5): [0.10, 0.20, 0.05, 0.30]})
    b = _metrics(0, {("mAP", None): [0.4, 0.6, 0.5, 0.5], ("D-ECE", 0.5): [0.20, 0.10, 0.10, 0.30]})
    rows = {r["metric"]: r for r in compare(a, b)}
    diff = np.array([0.1, 0.0, -0.1, 0.2])
    assert rows["mAP"]["diff_mean"] == pytest.approx(0.05)
    assert rows["mAP"]["diff_p2.5"] == pytest.approx(np.percentile(diff, 2.5))
    assert rows["mAP"]["diff_p97.5"] == pytest.approx(np.percentile(diff, 97.5))
    assert rows["mAP"]["frac_a_better"] == pytest.approx(0.5)  # A higher in resamples 0 and 3; a tie is not
    assert rows["D-ECE"]["frac_a_better"] == pytest.approx(0.5)  # lower is better: resamples 0 and 2
    assert rows["D-ECE"]["iou"] == 0.5 and rows["D-ECE"]["diff_mean"] == pytest.approx(-0.0125)


def test_compare_needs_paired_resamples():
    a = _metrics(0, {("mAP", None): [0.5, 0.6, 0.4, 0.7]})
    with pytest.raises(UserError, match="seed"):
        compare(a, _metrics(1, {("mAP", None): [0.5, 0.6, 0.4, 0.7]}), "a.json", "b.json")
    no_values = {**a, "metrics": [{"metric": "mAP", "iou": None, "value": 0.5}]}
    with pytest.raises(UserError, match="bootstrap"):
        compare(a, no_values, "a.json", "b.json")


def test_two_prediction_files_share_their_resamples():
    # Same seed, same resamples: the same detections in another file order give identical per-resample values
    # (unpaired resamples would differ), so every paired difference is 0.
    gt, dets = random_scene(5)
    one = evaluate(gt, parse_detections(dets), bootstrap=20, seed=3)
    two = evaluate(gt, parse_detections(list(reversed(dets))), bootstrap=20, seed=3)
    rows = compare(one, two)
    # Reversing the file order changes nothing but the tie order (scores are distinct): identical resamples.
    assert all(r["diff_mean"] == pytest.approx(0, abs=1e-12) and r["frac_a_better"] == 0 for r in rows)
