"""ensemble-boxes weighted boxes fusion of detections files, as a whole process: the baseline that `multirater
fuse` is timed against when reading and writing are counted too (bench_engine.py, bench_fusion_scale.py).

Does the same job as ``multirater fuse FILES --out OUT``: reads every model's detections file (the standard
library's json, as a user of ensemble-boxes would), fuses each image with ``weighted_boxes_fusion`` (boxes scaled
to [0, 1] by the image size), and writes the fused boxes as COCO results.

Run: ``python benchmarks/wbf_files.py --size 2048 --out fused.json PRED.json ...``
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from ensemble_boxes import weighted_boxes_fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preds", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=float, required=True, help="image side in pixels (boxes are scaled by it)")
    parser.add_argument("--iou", type=float, default=0.5)
    args = parser.parse_args()

    per_image: dict[int, list[list[dict]]] = {}
    for m, path in enumerate(args.preds):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        for d in data["detections"]:
            per_image.setdefault(d["image_id"], [[] for _ in args.preds])[m].append(d)

    fused = []
    for image_id in sorted(per_image):
        boxes, scores, labels = [], [], []
        for dets in per_image[image_id]:
            b = np.array([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4)
            boxes.append(np.clip(np.c_[b[:, :2], b[:, :2] + b[:, 2:]] / args.size, 0.0, 1.0))
            scores.append([d["score"] for d in dets])
            labels.append([d["category_id"] for d in dets])
        out_boxes, out_scores, out_labels = weighted_boxes_fusion(
            boxes, scores, labels, iou_thr=args.iou, skip_box_thr=0.0
        )
        xyxy = np.asarray(out_boxes) * args.size
        for box, score, label in zip(xyxy.tolist(), np.asarray(out_scores).tolist(), np.asarray(out_labels).tolist()):
            fused.append({"image_id": image_id, "category_id": int(label),
                          "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(fused, fh)


if __name__ == "__main__":
    main()
