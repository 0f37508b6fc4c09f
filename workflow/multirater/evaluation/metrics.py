"""The metrics a metrics file holds (``multirater evaluate``), one registry: each name with what it measures,
which way is better, and how ``evaluate`` computes it. The tables compare in the registered direction
(``LOWER_IS_BETTER``), and ``evaluate`` writes the COCO family in the registry's order.

A new metric of the COCO family (a curve read at some of COCO's IoU thresholds) is one entry here; another
kind also needs its computation in ``evaluate`` (as D-ECE's and D-ECE-soft's ``_dece_records``).
"""

from __future__ import annotations

from dataclasses import dataclass

from multirater.core.coco_ap import AP50_INDEX, AP75_INDEX


@dataclass(frozen=True)
class CocoCurve:
    """A COCO metric: the mean of the precision (AP) or final recall (AR) over categories with ground truth and
    over COCO's IoU thresholds ``thresholds`` (a slice of 0.50:0.05:0.95)."""

    recall: bool
    thresholds: slice


@dataclass(frozen=True)
class Metric:
    description: str
    lower_is_better: bool = False  # an error (D-ECE); every other metric is a score
    per_iou: bool = False  # one value per IoU threshold of ``evaluation.iou``; else "iou" is empty
    coco: CocoCurve | None = None  # how ``evaluate`` computes a COCO metric
    reference: bool = False  # the metrics file's finite-sample ``dece_reference`` band belongs beside it
    soft_gt: bool = False  # written only when ``evaluate`` is given soft label sets (``--soft-gt``)


DECE = "D-ECE"
DECE_SOFT = "D-ECE-soft"  # D-ECE against the share of label sets a detection matches (``dece_soft``)

METRICS: dict[str, Metric] = {
    "mAP": Metric("COCO AP over IoU 0.50:0.95", coco=CocoCurve(recall=False, thresholds=slice(None))),
    "AP50": Metric("COCO AP at IoU 0.50", coco=CocoCurve(False, slice(AP50_INDEX, AP50_INDEX + 1))),
    "AP75": Metric("COCO AP at IoU 0.75", coco=CocoCurve(False, slice(AP75_INDEX, AP75_INDEX + 1))),
    "mAR": Metric("COCO AR (maxDets detections per image) over IoU 0.50:0.95",
                  coco=CocoCurve(recall=True, thresholds=slice(None))),
    DECE: Metric("detection expected calibration error of the confidences (Campi et al. Eq. 1)",
                 lower_is_better=True, per_iou=True, reference=True),
    DECE_SOFT: Metric("D-ECE against the share of the soft label sets (e.g. each rater's own test labels) whose "
                      "boxes a detection matches; after each D-ECE row", lower_is_better=True, per_iou=True,
                      soft_gt=True),
}

LOWER_IS_BETTER = frozenset(name for name, metric in METRICS.items() if metric.lower_is_better)
