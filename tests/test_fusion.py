"""Fusion: hand-computed groups and scores, tie rules, same-model exclusion, empty images, one model, and
identity with the plain-Python implementation of the rule (benchmarks/baseline_fusion.py) on random data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from multirater.io.detections import Detections
from multirater.core.errors import UserError
from multirater.core.boxes import iou_matrix
from multirater.core.fusion import fuse, group_members
from multirater.core.fusion_pairs import linked_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from baseline_fusion import fuse_plain  # noqa: E402


def det(boxes, scores, image_ids=None, images=None, categories=None) -> Detections:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    images = np.ones(n, dtype=np.int64) if images is None else np.asarray(images, dtype=np.int64)
    categories = np.ones(n, dtype=np.int64) if categories is None else np.asarray(categories, dtype=np.int64)
    ids = np.unique(images) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    return Detections(ids, images, categories, boxes, np.asarray(scores, dtype=np.float64))


def coco_iou(a, b) -> float:
    return float(mask_utils.iou([a], [b], [0])[0, 0])


def test_three_models_one_object_hand_computed():
    # Shifted 10x10 squares: IoU(A, B) = IoU(A, C) = 90/110, IoU(B, C) = 81/119, all >= 0.5.
    a, b, c = [0, 0, 10, 10], [1, 0, 10, 10], [0, 1, 10, 10]
    models = [det([a], [0.9]), det([b], [0.6]), det([c], [0.3]), det([], [], image_ids=[1])]
    out = fuse(models, iou=0.5)
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [1 / 3, 1 / 3, 10, 10], atol=1e-12)
    assert out.scores[0] == pytest.approx((0.9 + 0.6 + 0.3) / 4)  # the absent fourth model counts 0
    assert out.extra[0]["n_models"] == 3
    # population std over the 4 models' scores (0.9, 0.6, 0.3, 0)
    assert out.extra[0]["score_std"] == pytest.approx(np.std([0.9, 0.6, 0.3, 0.0]))
    grouped = fuse(models, iou=0.5, score_norm="group")
    assert grouped.scores[0] == pytest.approx(0.6)
    assert grouped.extra[0]["score_std"] == pytest.approx(np.std([0.9, 0.6, 0.3]))
    best = fuse(models, iou=0.5, merge="max-score")
    np.testing.assert_allclose(best.boxes[0], a)
    assert best.scores[0] == pytest.approx(0.9)


def test_complete_linkage_adds_the_box_with_the_largest_minimum_iou():
    o, p, q, r = [0, 0, 10, 10], [-0.4, 0.2, 10, 10], [0.7, -1.3, 10, 10], [-0.1, 2.0, 10, 10]
    # The geometry: P is closest to O; Q is closer to O than R, but R's minimum IoU with {O, P} is larger;
    # Q and R are too far apart to share a group.
    assert coco_iou(o, p) > coco_iou(o, q) > coco_iou(o, r) >= 0.5
    assert min(coco_iou(o, r), coco_iou(p, r)) > min(coco_iou(o, q), coco_iou(p, q)) >= 0.5
    assert coco_iou(q, r) < 0.5
    models = [det([o], [0.9]), det([p], [0.8]), det([q], [0.7]), det([r], [0.6])]
    assert group_members(models, 0.5) == [[(0, 0), (1, 0), (3, 0)], [(2, 0)]]
    out = fuse(models, 0.5)
    assert out.scores.tolist() == pytest.approx([(0.9 + 0.8 + 0.6) / 4, 0.7 / 4])


def test_one_box_per_model_in_a_group():
    # Model 0 has two almost identical boxes: they never share a group; model 1's box joins the first.
    models = [det([[0, 0, 10, 10], [0.2, 0, 10, 10]], [0.9, 0.8]), det([[0, 0.1, 10, 10]], [0.5])]
    assert group_members(models, 0.5) == [[(0, 0), (1, 0)], [(0, 1)]]
    out = fuse(models, 0.5)
    assert out.extra[0]["n_models"] == 2 and out.extra[1]["n_models"] == 1


def test_ties_follow_model_index_then_file_order():
    # Equal scores: model 0's box opens. Candidates from models 1 and 2 at exactly equal IoU with the opener
    # (mirror shifts) but too far from each other: the earlier one in step 1's order (model 1) joins.
    o, left, right = [0, 0, 10, 10], [-3, 0, 10, 10], [3, 0, 10, 10]
    assert coco_iou(o, left) == coco_iou(o, right) >= 0.5 > coco_iou(left, right)
    models = [det([o], [0.5]), det([left], [0.5]), det([right], [0.5])]
    assert group_members(models, 0.5) == [[(0, 0), (1, 0)], [(2, 0)]]
    swapped = [det([right], [0.5]), det([left], [0.5]), det([o], [0.5])]
    # Now model 0 (right) opens; only o reaches it; left opens the second group.
    assert group_members(swapped, 0.5) == [[(0, 0), (2, 0)], [(1, 0)]]
    # Within one file, ties keep the file order.
    same_file = [det([[50, 50, 10, 10], [0, 0, 10, 10]], [0.5, 0.5])]
    assert group_members(same_file, 0.5) == [[(0, 0)], [(0, 1)]]


def test_images_and_categories_are_fused_separately_and_empty_images_kept():
    a = det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], image_ids=[1, 2, 7], images=[1, 1], categories=[1, 2])
    b = det([[0, 0, 10, 10]], [0.7], image_ids=[1, 3], images=[1], categories=[2])
    out = fuse([a, b], 0.5)
    assert out.image_ids.tolist() == [1, 2, 3, 7]
    assert out.category_id.tolist() == [1, 2]
    assert out.scores.tolist() == pytest.approx([0.45, 0.75])
    empty = fuse([det([], [], image_ids=[4]), det([], [], image_ids=[5])], 0.5)
    assert len(empty) == 0 and empty.image_ids.tolist() == [4, 5]


def test_one_model_is_returned_as_it_is():
    rng = np.random.default_rng(1)
    boxes = np.column_stack([rng.uniform(0, 50, (30, 2)), rng.uniform(5, 20, (30, 2))])
    scores = rng.random(30)
    out = fuse([det(boxes, scores)], 0.5)
    order = np.argsort(-scores)
    np.testing.assert_allclose(out.boxes, boxes[order])
    np.testing.assert_allclose(out.scores, scores[order])
    assert all(e["n_models"] == 1 and e["score_std"] == 0 for e in out.extra)


def test_votes_per_source_and_kept_meta():
    models = [det([[0, 0, 10, 10]], [0.9]), det([[0, 0, 10, 10]], [0.8]), det([[0, 0, 10, 10]], [0.7])]
    for m in models:
        m.meta = {"strategy": "ls"}
    models[0].meta["config_id"] = "abc"
    out = fuse(models, 0.5, sources=["r2", "r1", "r2"])
    assert out.extra[0]["votes"] == {"r2": 2, "r1": 1}
    assert out.meta["strategy"] == "ls" and "config_id" not in out.meta
    assert out.meta["fusion"]["models"] == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"iou": 0.0}, {"iou": 1.5}, {"sources": ["a"]}, {"score_norm": "mean"}, {"merge": "median"}],
)
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(UserError):
        fuse([det([], [], [1]), det([], [], [1])], **kwargs)


def _random_models(rng, n_models, n_images, n_objects, quantize):
    models = []
    truth = {
        img: np.column_stack([rng.uniform(0, 200, (n_objects, 2)), rng.uniform(8, 40, (n_objects, 2))])
        for img in range(1, n_images + 1)
    }
    for _ in range(n_models):
        recs = []
        for img, objs in truth.items():
            for k, box in enumerate(objs):
                if rng.random() < 0.8:
                    b = box + rng.normal(0, 2.5, 4)
                    b[2:] = np.abs(b[2:])
                    recs.append((img, 1 + k % 2, b.tolist(), float(rng.random())))
            for _ in range(4):
                b = [*rng.uniform(0, 200, 2), *rng.uniform(8, 40, 2)]
                recs.append((img, int(rng.integers(1, 3)), b, float(rng.random())))
        if quantize:
            recs = [(i, c, b, round(s * 4) / 4) for i, c, b, s in recs]  # many exact score ties
        models.append([recs[i] for i in rng.permutation(len(recs))])
    return models


@pytest.mark.parametrize("seed", range(6))
def test_identical_to_the_plain_python_rule(seed):
    rng = np.random.default_rng(seed)
    models = _random_models(rng, int(rng.integers(1, 9)), 3, int(rng.integers(0, 25)), quantize=seed % 2 == 1)
    dets = [
        det([r[2] for r in m], [r[3] for r in m], image_ids=[1, 2, 3], images=[r[0] for r in m],
            categories=[r[1] for r in m])
        for m in models
    ]
    threshold = [0.5, 0.3, 0.7][seed % 3]
    reference = fuse_plain(models, threshold)
    assert group_members(dets, threshold) == [g["members"] for g in reference]
    out = fuse(dets, threshold)
    assert out.image_id.tolist() == [g["image_id"] for g in reference]
    assert out.category_id.tolist() == [g["category_id"] for g in reference]
    np.testing.assert_allclose(out.boxes, [g["bbox"] for g in reference], rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.scores, [g["score"] for g in reference], rtol=0, atol=1e-12)
    grouped = fuse(dets, threshold, score_norm="group")
    np.testing.assert_allclose(
        grouped.scores, [g["score"] for g in fuse_plain(models, threshold, score_norm="group")], atol=1e-12
    )


# --- bounded memory and time: pairs from a grid, groups built in rounds -----------------------------------------

def _boxes(rng, n, spread=200.0):
    return np.column_stack([rng.uniform(0, spread, (n, 2)), rng.uniform(4, 40, (n, 2))])


@pytest.mark.parametrize("seed", range(8))
def test_linked_pairs_are_every_pair_the_iou_matrix_links(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    boxes = _boxes(rng, n, spread=float(rng.choice([30, 200])))
    if seed % 2:
        boxes = np.round(boxes)  # equal centres and sizes
    boxes[rng.integers(0, n, 3), 2 + seed % 2] = 0.0  # no area: never linked
    boxes[: n // 4, 2:] *= rng.choice([0.01, 1, 30])  # sizes far apart
    key, model = rng.integers(0, 3, n), rng.integers(0, 4, n)
    threshold = [0.5, 0.05, 0.3, 0.7, 0.95, 1.0, 0.5, 0.51][seed]
    i, j, overlap = linked_pairs(key, boxes, model, threshold)
    reference = iou_matrix(boxes, boxes)  # pycocotools' values (test_foundation)
    linked = np.triu(reference >= threshold, 1) & (key[:, None] == key) & (model[:, None] != model)
    order = np.lexsort((j, i))
    expected_i, expected_j = np.nonzero(linked)
    assert np.array_equal(i[order], expected_i) and np.array_equal(j[order], expected_j)
    assert np.array_equal(overlap[order], reference[expected_i, expected_j])


def _cluster_models(rng, n_models, n_objects):
    """Several models' boxes around the same objects: large, overlapping groups and chains of links."""
    objects = _boxes(rng, n_objects, spread=120.0)
    models = []
    for _ in range(n_models):
        near = np.repeat(objects, 3, axis=0)
        near = near + rng.normal(0, 2.0, near.shape)
        near[:, 2:] = np.abs(near[:, 2:]) + 1
        scores = np.round(rng.random(len(near)) * 8) / 8  # ties
        models.append([(1, 1, b.tolist(), float(s)) for b, s in zip(near, scores)])
    return models


@pytest.mark.parametrize("path", ["rounds", "one at a time"])
@pytest.mark.parametrize("seed", range(4))
def test_rounds_and_one_group_at_a_time_both_follow_the_rule(monkeypatch, path, seed):
    import multirater.core.fusion_grouping as grouping

    monkeypatch.setattr(grouping, "_SEQUENTIAL_BELOW", 0 if path == "rounds" else 10**9)
    rng = np.random.default_rng(seed)
    models = _cluster_models(rng, int(rng.integers(2, 7)), 30)
    dets = [det([r[2] for r in m], [r[3] for r in m], image_ids=[1]) for m in models]
    threshold = [0.5, 0.3, 0.6, 0.4][seed]
    assert group_members(dets, threshold) == [g["members"] for g in fuse_plain(models, threshold)]


def test_a_chain_of_links_with_falling_scores_is_grouped_by_the_rule():
    # Box k links to box k + 1 only (IoU 80/120; k + 2 is of the same model, k + 3 too far), and scores fall along
    # the chain: a round could free one box only.
    n = 600
    boxes = np.column_stack([np.arange(n) * 2.0, np.zeros(n), np.full(n, 10.0), np.full(n, 10.0)])
    models = [[(1, 1, boxes[k].tolist(), 1.0 - k / n) for k in range(m, n, 2)] for m in range(2)]
    dets = [det([r[2] for r in m], [r[3] for r in m], image_ids=[1]) for m in models]
    groups = group_members(dets, 0.5)
    assert groups == [g["members"] for g in fuse_plain(models, 0.5)]
    assert len(groups) == n // 2  # pairs (0, 1), (2, 3), ...


def test_fusion_memory_grows_with_the_boxes_not_their_square():
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 40_000  # an all-pairs IoU matrix of one image would take 12.8 GB
    models = [det(_boxes(rng, n // 4, spread=4000.0), rng.random(n // 4), image_ids=[1]) for _ in range(4)]
    tracemalloc.start()
    try:
        out = fuse(models, 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0 < len(out) <= n
    assert peak < 200 * n * 8  # a few hundred numbers per box at most


@pytest.mark.parametrize("seed", range(3))
def test_fused_detections_are_written_as_their_records(monkeypatch, tmp_path, seed):
    # The writer slots each column's numbers between constant texts; the file must be what encoding the records
    # one by one gives (orjson on the plain dicts), whatever the ids, counts and the slicing.
    import orjson

    import multirater.io.detections as detections

    monkeypatch.setattr(detections, "_WRITE_SLICE", [7, 50, 10_000][seed])
    rng = np.random.default_rng(seed)
    n = 120
    ids = [rng.integers(1, 4, n), rng.integers(-2**40, 2**40, n), rng.integers(-3, 3, n)][seed]
    models = [det(_boxes(rng, n) * rng.choice([1.0, 1e-7, 1e12]), rng.random(n), images=ids,
                  categories=rng.integers(0, 2, n)) for _ in range(5)]
    fused = fuse(models[: 5 - seed], 0.3, sources=["a", "b\"é", "a", "c", "b\"é"][: 5 - seed])
    fused.meta["note"] = seed
    path = tmp_path / "fused.json"
    for written in (fused, models[0]):  # with extra keys, and without
        detections.write_detections(path, written)
        assert path.read_bytes() == orjson.dumps(written.to_json()) + b"\n"
    detections.write_detections(path, fused)
    assert detections.read_detections(path).to_records() == fused.to_records()


@pytest.mark.parametrize("seed", range(6))
def test_a_subset_fused_from_the_shared_pool_is_fuse_on_that_subset(seed):
    """SubsetFusion pools and links all the models once; fusing a subset from there gives what fuse gives on
    the subset's models, bit for bit, and the plain-Python rule's groups (ties in scores included)."""
    from multirater.ensembles.subsets import SubsetFusion

    rng = np.random.default_rng(100 + seed)
    if seed % 3 == 2:
        models = _cluster_models(rng, 7, 25)
        image_ids = [1]
    else:
        models = _random_models(rng, 7, 3, 20, quantize=seed % 2 == 1)
        image_ids = [1, 2, 3]
    dets = [det([r[2] for r in m], [r[3] for r in m], image_ids=image_ids, images=[r[0] for r in m],
                categories=[r[1] for r in m]) for m in models]
    threshold = [0.5, 0.3, 0.6][seed % 3]
    shared = SubsetFusion(dets, threshold)
    for size in (1, 2, 4, 7):
        chosen = np.sort(rng.choice(len(dets), size=size, replace=False)).tolist()
        sources = [f"s{k % 2}" for k in chosen]
        for score_norm, merge in (("ensemble", "mean"), ("group", "max-score")):
            ours = shared.fuse(chosen, sources, score_norm, merge)
            theirs = fuse([dets[k] for k in chosen], threshold, sources, score_norm, merge)
            for name in ("image_ids", "image_id", "category_id", "boxes", "scores"):
                assert np.array_equal(getattr(ours, name), getattr(theirs, name)), (size, name)
            assert ours.to_records() == theirs.to_records() and ours.meta == theirs.meta
        reference = fuse_plain([models[k] for k in chosen], threshold)
        assert len(ours) == len(reference)
    with pytest.raises(UserError, match="increasing order"):
        shared.fuse([2, 1])
