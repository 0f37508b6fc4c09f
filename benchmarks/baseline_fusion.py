"""Plain-Python implementation of multirater's fusion rule: the speed baseline and the test's reference.

Written straight from the rule, one box at a time, with no numpy (see ``multirater.fusion`` for the rule).
Input: one list per model of (image_id, category_id, [x, y, w, h], score) tuples.
Output: fused groups in opening order, each a dict with the members as (model, index-in-file) pairs.
"""

from __future__ import annotations


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two [x, y, w, h] boxes, with pycocotools' arithmetic."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    iw = iw if iw > 0.0 else 0.0
    ih = ih if ih > 0.0 else 0.0
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def fuse_plain(models: list[list[tuple]], threshold: float = 0.5, score_norm: str = "ensemble") -> list[dict]:
    n_models = len(models)
    pools: dict[tuple[int, int], list[tuple]] = {}
    for m, dets in enumerate(models):
        for k, (image, category, box, score) in enumerate(dets):
            pools.setdefault((image, category), []).append((score, m, k, list(box)))
    fused = []
    for key in sorted(pools):
        # step 1: score descending, then model index, then index in the file
        boxes = sorted(pools[key], key=lambda d: (-d[0], d[1], d[2]))
        remaining = list(range(len(boxes)))
        while remaining:
            opener = remaining.pop(0)  # step 2
            members = [opener]
            models_in = {boxes[opener][1]}
            # every member must reach the threshold with the opener, so only those boxes can ever join
            near = [r for r in remaining if iou(boxes[r][3], boxes[opener][3]) >= threshold]
            while True:  # step 3
                best, best_min = None, -1.0
                for r in near:
                    if boxes[r][1] in models_in:
                        continue
                    worst = min(iou(boxes[r][3], boxes[g][3]) for g in members)
                    if worst >= threshold and worst > best_min:  # strict: earlier box wins ties
                        best, best_min = r, worst
                if best is None:
                    break
                members.append(best)
                models_in.add(boxes[best][1])
                remaining.remove(best)
                near.remove(best)
            scores = [boxes[g][0] for g in members]
            box = [sum(boxes[g][3][c] for g in members) / len(members) for c in range(4)]
            norm = n_models if score_norm == "ensemble" else len(members)
            fused.append(
                {
                    "image_id": key[0],
                    "category_id": key[1],
                    "bbox": box,
                    "score": sum(scores) / norm,
                    "members": [(boxes[g][1], boxes[g][2]) for g in sorted(members)],  # step 1's order
                }
            )
    return fused
