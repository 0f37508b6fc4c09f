"""Benchmark of multirater's fusion and evaluation engine against its baselines, measured in one process.

Workload (issue 3): 20 images of 2048 px, 20 models, about 60 objects per image; each model finds each object
with probability 0.8 (box jittered) and adds about 15 false positives per image.

- fusion: ``multirater.core.fusion.fuse`` vs the plain-Python baseline of the same rule
  (benchmarks/baseline_fusion.py; must give identical groups) and ensemble-boxes ``weighted_boxes_fusion`` (same
  input, IoU 0.5): the kernels, in this process; then as whole processes that read and write the files:
  ``multirater fuse`` on the 20 models' detections files vs ensemble-boxes WBF reading the same files
  (benchmarks/wbf_files.py);
- evaluation: ``multirater.evaluation.evaluate.evaluate`` with B bootstrap resamples (mAP, AP50, AP75, mAR,
  D-ECE at IoU 0.5 and 0.75) vs pycocotools and faster-coco-eval COCOeval run once per resample (mAP/mAR only) on
  the resample with each repeated image as its own image id; the resample values must agree.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--resamples 100] [--coco-resamples 3] [--fusion-only]``
(pycocotools is timed on a few resamples and its per-resample time scaled to B).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_fusion import fuse_plain  # noqa: E402
from whole_process import best_of, fuse_command, wbf_available, wbf_command  # noqa: E402

from multirater.evaluation.bootstrap import resample_indices  # noqa: E402
from multirater.io.detections import Detections, write_detections  # noqa: E402
from multirater.core.fusion import fuse, group_members  # noqa: E402
from multirater.evaluation.evaluate import evaluate  # noqa: E402

SIZE = 2048


def workload(n_images=20, n_models=20, n_objects=60, recall=0.8, n_fp=15, seed=0):
    """Ground truth (COCO dict) and one list of (image, category, box, score) per model."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    truth = {}
    for img in range(1, n_images + 1):
        wh = rng.uniform(40, 160, (n_objects, 2))
        xy = rng.uniform(0, SIZE - wh)
        truth[img] = np.column_stack([xy, wh])
        images.append({"id": img, "file_name": f"{img}.png", "width": SIZE, "height": SIZE})
        for b in truth[img]:
            anns.append(
                {"id": len(anns) + 1, "image_id": img, "category_id": 1, "bbox": b.tolist(),
                 "area": float(b[2] * b[3]), "iscrowd": 0}
            )
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "organoid"}]}
    models = []
    for _ in range(n_models):
        dets = []
        for img, boxes in truth.items():
            found = boxes[rng.random(len(boxes)) < recall]
            jitter = found + rng.normal(0, 0.06, found.shape) * found[:, [2, 3, 2, 3]]
            jitter[:, 2:] = np.abs(jitter[:, 2:])
            wh = rng.uniform(30, 160, (n_fp, 2))
            fps = np.column_stack([rng.uniform(0, SIZE - wh), wh])
            scores = np.r_[rng.beta(5, 2, len(found)), rng.beta(2, 5, n_fp)]
            for box, score in zip(np.r_[jitter, fps], scores):
                dets.append((img, 1, box.tolist(), float(score)))
        models.append(dets)
    return gt, models


def as_detections(dets, image_ids):
    return Detections(
        image_ids=np.asarray(image_ids, dtype=np.int64),
        image_id=np.array([d[0] for d in dets], dtype=np.int64),
        category_id=np.array([d[1] for d in dets], dtype=np.int64),
        boxes=np.array([d[2] for d in dets], dtype=np.float64).reshape(-1, 4),
        scores=np.array([d[3] for d in dets], dtype=np.float64),
    )


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def wbf_inputs(models, image_ids):
    """Per image, ensemble-boxes' inputs: one list of boxes (xyxy in [0, 1]), scores and labels per model."""
    inputs = []
    for img in image_ids:
        boxes, scores, labels = [], [], []
        for dets in models:
            mine = [d for d in dets if d[0] == img]
            b = np.array([d[2] for d in mine]).reshape(-1, 4)
            xyxy = np.clip(np.c_[b[:, :2], b[:, :2] + b[:, 2:]] / SIZE, 0, 1)
            boxes.append(xyxy.tolist())
            scores.append([d[3] for d in mine])
            labels.append([d[1] for d in mine])
        inputs.append((boxes, scores, labels))
    return inputs


def wbf_all(inputs):
    from ensemble_boxes import weighted_boxes_fusion

    for boxes, scores, labels in inputs:
        weighted_boxes_fusion(boxes, scores, labels, iou_thr=0.5, skip_box_thr=0.0)


def whole_process(dets, repeat):
    """`multirater fuse` and ensemble-boxes WBF as fresh processes on the same detections files."""
    print("\n== fusion as a whole process: start, read the 20 files, fuse, write (best of "
          f"{repeat})")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k, model in enumerate(dets):
            paths.append(Path(folder) / f"model{k:02d}.json")
            write_detections(paths[-1], model)
        ours = best_of(fuse_command(paths, Path(folder) / "fused.json"), repeat)
        print(f"multirater fuse          {ours.wall:8.3f} s  (CPU {ours.cpu:.3f} s, peak {ours.peak_mb:.0f} MB)")
        if not wbf_available():
            print("ensemble-boxes not installed (pip install '.[bench]')")
            return
        wbf = best_of(wbf_command(paths, Path(folder) / "wbf.json", SIZE), repeat)
        print(f"ensemble-boxes WBF       {wbf.wall:8.3f} s  (CPU {wbf.cpu:.3f} s, peak {wbf.peak_mb:.0f} MB)"
              f"   ratio {wbf.wall / ours.wall:5.1f}x (CPU {wbf.cpu / ours.cpu:.1f}x)")


def resampled(gt, dets, positions):
    """The resample as a dataset: draw j becomes image id j + 1."""
    ids = sorted(im["id"] for im in gt["images"])
    by_img_ann, by_img_det = {}, {}
    for a in gt["annotations"]:
        by_img_ann.setdefault(a["image_id"], []).append(a)
    for d in dets:
        by_img_det.setdefault(d["image_id"], []).append(d)
    images, anns, out = [], [], []
    image_of = {im["id"]: im for im in gt["images"]}
    for j, p in enumerate(positions):
        old, new = ids[p], j + 1
        images.append({**image_of[old], "id": new})
        for a in by_img_ann.get(old, []):
            anns.append({**a, "id": len(anns) + 1, "image_id": new})
        out.extend({**d, "image_id": new} for d in by_img_det.get(old, []))
    return {**gt, "images": images, "annotations": anns}, out


def coco_map(module, gt, dets, max_dets=100):
    """mAP and mAR with a COCOeval implementation (pycocotools or faster_coco_eval); returns the time spent in
    the library (COCO objects, loadRes, evaluate, accumulate) and the two values."""
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    gt, dets = copy.deepcopy(gt), copy.deepcopy(dets)  # the libraries annotate their inputs in place
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(dets)
        ev = COCOeval(cg, cd, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        spent = time.perf_counter() - start
    m = list(ev.params.maxDets).index(max_dets)
    p = np.asarray(ev.eval["precision"])[:, :, :, 0, m]
    r = np.asarray(ev.eval["recall"])[:, :, 0, m]
    return spent, float(np.mean(p[p > -1])), float(np.mean(r[r > -1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=100)
    parser.add_argument("--coco-resamples", type=int, default=3, help="resamples timed with pycocotools")
    parser.add_argument("--fast-resamples", type=int, default=20, help="resamples timed with faster-coco-eval")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fusion-only", action="store_true", help="skip the evaluation benchmark")
    args = parser.parse_args()

    gt, models = workload()
    image_ids = [im["id"] for im in gt["images"]]
    dets = [as_detections(m, image_ids) for m in models]
    n_boxes = sum(len(m) for m in models)
    print(f"workload: {len(image_ids)} images of {SIZE} px, {len(models)} models, {n_boxes} boxes")

    print("\n== fusion (IoU 0.5)")
    t_ours, fused = timed(lambda: fuse(dets, 0.5), args.repeat)
    t_plain, plain = timed(lambda: fuse_plain(models, 0.5))
    same = group_members(dets, 0.5) == [g["members"] for g in plain]
    print(f"multirater fuse          {t_ours:8.3f} s  ({len(fused)} fused boxes)")
    print(f"plain-Python baseline    {t_plain:8.3f} s  identical groups: {same}   ratio {t_plain / t_ours:7.1f}x")
    if wbf_available():
        inputs = wbf_inputs(models, image_ids)  # per-image lists made outside the timer
        t_wbf, _ = timed(lambda: wbf_all(inputs), args.repeat)
        print(f"ensemble-boxes WBF       {t_wbf:8.3f} s                           ratio {t_wbf / t_ours:7.1f}x")
    else:
        print("ensemble-boxes not installed (pip install '.[bench]')")
    whole_process(dets, args.repeat)
    if args.fusion_only:
        return

    print(f"\n== evaluation of the fused ensemble, {args.resamples} bootstrap resamples")
    fused_recs = fused.to_records()
    b = args.resamples
    t_eval, metrics = timed(
        lambda: evaluate(gt, fused, iou_thresholds=(0.5, 0.75), bootstrap=b, seed=0), args.repeat
    )
    t_once, _ = timed(lambda: evaluate(gt, fused, iou_thresholds=(0.5, 0.75), bootstrap=0), args.repeat)
    ours = {r["metric"]: r for r in metrics["metrics"]}
    print(f"multirater evaluate      {t_eval:8.3f} s  (mAP, AP50, AP75, mAR, D-ECE@0.5/0.75; "
          f"{t_once:.3f} s of it without resamples)")
    idx = resample_indices(len(image_ids), b, 0)
    for module, n in (("faster_coco_eval", args.fast_resamples), ("pycocotools", args.coco_resamples)):
        n = min(n, b)
        if n == 0:
            continue
        worst, spent = 0.0, 0.0
        for r in range(n):
            g2, d2 = resampled(gt, fused_recs, idx[r])  # built outside the timer
            t, m_ap, m_ar = coco_map(module, g2, d2)
            spent += t
            worst = max(worst, abs(m_ap - ours["mAP"]["values"][r]), abs(m_ar - ours["mAR"]["values"][r]))
        per = spent / n
        label = f"{module} x{b}"
        print(f"{label:<24} {per * b:8.3f} s  ({per:.3f} s per resample, timed on {n}; "
              f"max |diff| of mAP/mAR vs ours {worst:.1e})   ratio {per * b / t_eval:7.1f}x")
    _, m_ap, _ = coco_map("pycocotools", gt, fused_recs)
    print(f"\nmAP on the test set: multirater {ours['mAP']['value']:.15f}  pycocotools {m_ap:.15f}")


if __name__ == "__main__":
    main()
