"""A majority consensus derived from several test label sets (e.g. each expert at each time point).

The rule, on the images every chosen label set lists, per image and category:

1. each label set is one "model" whose boxes all score 1, taken in the order of the label sets given and,
   within a set, of its file;
2. the boxes are grouped with the paper's complete-linkage rule (``multirater.core.fusion``): the first
   remaining box opens a group, which takes, one at a time, the box from a set not yet in it whose minimum
   IoU with every member is largest, while that minimum is >= ``iou`` (0.5);
3. a group is kept when more than half of the K sets have a box in it (2 of 3, 2 of 2, 3 of 4, ...);
4. its box is the mean of the members' boxes.

The result is a COCO file like any other label set: list it under ``test_label_sets`` in the manifest. Its
``info.derived_from`` names the label sets it was derived from: a derived set never votes in another majority
(``derived_label_sets``).
"""

from __future__ import annotations

import numpy as np

from multirater.core.errors import UserError
from multirater.core.fusion import fuse
from multirater.io.detections import Detections

MAJORITY = "majority"  # the label set's name where the importer adds it, or the workflow derives it
CONSENSUS = "consensus"  # multirater.data.manifest.CONSENSUS (that module reads YAML only; this one fuses)


def majority_voters(label_sets: list[str]) -> list[str]:
    """The test label sets whose majority the workflow derives as the label set ``majority`` when a dataset
    has no consensus: all of them, given at least two and no ``majority`` already; else none (a consensus,
    one label set, or a majority written by the import)."""
    if CONSENSUS in label_sets or MAJORITY in label_sets or len(label_sets) < 2:
        return []
    return list(label_sets)


def majority_note(manifest: str, voters: list[str], files: dict[str, str], headline: str) -> str:
    """What the workflow says when it starts on a dataset without a consensus."""
    role = ("the ground truth of the headline metrics, tables and figures" if headline == MAJORITY
            else f"evaluated beside the headline label set {headline}")
    return (f"No consensus in {manifest}: the majority of its test label sets ({', '.join(voters)}; an object counts "
            f"where more than half of them mark it) is the label set {MAJORITY} ({files[MAJORITY]}, rule majority), "
            f"{role}; every model and ensemble is also evaluated against each label set.")


def majority_consensus(label_sets: dict[str, dict], iou: float = 0.5) -> dict:
    """The majority consensus (see the module docstring) of COCO dicts, one per label set, as a COCO dict.

    Its images are those every label set lists (in the first set's order), its categories the first set's.
    """
    if len(label_sets) < 2:
        names = ", ".join(label_sets) or "none"
        raise UserError(f"a majority needs at least 2 label sets, got {len(label_sets)} ({names})")
    cocos = list(label_sets.values())
    listed = [{int(im["id"]) for im in coco["images"]} for coco in cocos]
    common = set.intersection(*listed)
    images = [dict(im) for im in cocos[0]["images"] if int(im["id"]) in common]
    fused = fuse([_as_detections(coco, common) for coco in cocos], iou=iou, score_norm="ensemble", merge="mean")
    members = np.array([extra["n_models"] for extra in fused.extra or []], dtype=np.int64)
    kept = np.flatnonzero(2 * members > len(cocos))
    annotations = []
    for k in kept.tolist():
        x, y, w, h = (float(v) for v in fused.boxes[k])
        annotations.append({"id": len(annotations) + 1, "image_id": int(fused.image_id[k]),
                            "category_id": int(fused.category_id[k]), "bbox": [x, y, w, h], "area": w * h,
                            "iscrowd": 0})
    return {"info": {"description": "majority consensus", "derived_from": list(label_sets), "iou": iou},
            "images": images, "annotations": annotations, "categories": [dict(c) for c in cocos[0]["categories"]]}


def derived_from(coco: dict) -> list[str] | None:
    """The label sets a COCO file was derived from (a majority consensus), or None for an original label set."""
    info = coco.get("info")
    sources = info.get("derived_from") if isinstance(info, dict) else None
    return [str(s) for s in sources] if isinstance(sources, list) else None


def derived_label_sets(cocos: dict[str, dict]) -> dict[str, list[str]]:
    """The derived label sets among ``cocos`` (name -> what each was derived from): those that say so, and one
    named ``majority`` (the importer's name for it; files written before the marker existed do not say so)."""
    derived = {}
    for name, coco in cocos.items():
        sources = derived_from(coco)
        if sources is not None or name == MAJORITY:
            derived[name] = sources or []
    return derived


def _as_detections(coco: dict, image_ids: set[int]) -> Detections:
    """One label set's boxes on ``image_ids`` as detections scoring 1, in the file's order."""
    anns = [a for a in coco["annotations"] if int(a["image_id"]) in image_ids]
    return Detections(
        image_ids=np.array(sorted(image_ids), dtype=np.int64),
        image_id=np.array([a["image_id"] for a in anns], dtype=np.int64),
        category_id=np.array([a["category_id"] for a in anns], dtype=np.int64),
        boxes=np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
        scores=np.ones(len(anns), dtype=np.float64),
    )
