"""Labels as the detector sees them: category ids <-> labels, and per-source training targets as tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from multirater.data.dataset import Dataset
from multirater.training.coverage import RaterCoverage
from multirater.training.tiling import Window, crop_boxes, shift_polygons


class LabelMap:
    """COCO category ids <-> the detector's contiguous labels 1..K (0 is the background)."""

    def __init__(self, category_ids: list[int]) -> None:
        self.category_ids = sorted(int(c) for c in category_ids)
        self._to_label = {c: i + 1 for i, c in enumerate(self.category_ids)}

    @property
    def num_classes(self) -> int:
        """Categories plus the background."""
        return len(self.category_ids) + 1

    def labels(self, category_ids: np.ndarray) -> np.ndarray:
        """COCO category ids -> the detector's labels."""
        return np.asarray([self._to_label[int(c)] for c in category_ids], dtype=np.int64)

    def categories(self, labels: np.ndarray) -> np.ndarray:
        """The detector's labels -> COCO category ids."""
        lut = np.asarray([0, *self.category_ids], dtype=np.int64)
        return lut[np.asarray(labels, dtype=np.int64)]


def dataset_has_masks(dataset: Dataset, coverage: RaterCoverage, image_ids: list[int]) -> bool:
    """True when every annotation of these images, by whoever labelled them, carries a polygon segmentation."""
    anns = [a for r in coverage.rater_names for i in image_ids if coverage.labelled(r, i)
            for a in dataset.annotations(r, i)]
    return bool(anns) and all(a.get("segmentation") for a in anns)


class Targets:
    """Training targets of (sources, image): boxes xyxy float32, labels int64, optional masks uint8."""

    def __init__(self, dataset: Dataset, label_map: LabelMap, masks: bool) -> None:
        self.dataset = dataset
        self.label_map = label_map
        self.masks = masks
        self._cache: dict[tuple[str, int], dict[str, Any]] = {}

    def _one(self, source: str, image_id: int) -> dict[str, Any]:
        key = (source, image_id)
        if key not in self._cache:
            anns = self.dataset.annotations(source, image_id)
            xywh = np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
            # torchvision refuses boxes without area; drop them (a zero-width box marks no object).
            keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)[keep]
            cats = np.asarray([a["category_id"] for a in anns], dtype=np.int64)[keep]
            self._cache[key] = {
                "boxes": torch.as_tensor(xyxy, dtype=torch.float32),
                "labels": torch.as_tensor(self.label_map.labels(cats), dtype=torch.int64),
                "segmentations": [a.get("segmentation") for a, k in zip(anns, keep) if k],
            }
        return self._cache[key]

    def get(self, sources: list[str], image_id: int, window: Window | None = None,
            min_visible: float = 0.5) -> dict[str, torch.Tensor]:
        """The target of an image: the boxes (and masks) of these sources together; of a training
        crop ``window`` when one is given (boxes cut by it kept by the ``min_visible`` rule of
        :mod:`multirater.training.tiling`)."""
        parts = [self._one(s, image_id) for s in sources]
        target = {
            "boxes": torch.cat([p["boxes"] for p in parts]) if len(parts) > 1 else parts[0]["boxes"],
            "labels": torch.cat([p["labels"] for p in parts]) if len(parts) > 1 else parts[0]["labels"],
        }
        segs = [s for p in parts for s in p["segmentations"]] if self.masks else []
        if window is not None:
            keep, target["boxes"] = crop_boxes(target["boxes"], window, min_visible)
            target["labels"] = target["labels"][keep]
            segs = [s for s, k in zip(segs, keep.tolist()) if k]
        if self.masks:
            record = self.dataset.images[image_id]
            target["masks"] = (polygons_to_masks(segs, record.height, record.width) if window is None
                               else window_masks(segs, window, record.height, record.width))
        return target


def polygons_to_masks(segmentations: list[Any], height: int, width: int) -> torch.Tensor:
    """COCO polygon segmentations -> (N, H, W) uint8 masks (pycocotools rasterisation)."""
    from pycocotools import mask as mask_utils

    out = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, seg in enumerate(segmentations):
        rles = mask_utils.frPyObjects(seg, height, width)
        out[i] = mask_utils.decode(mask_utils.merge(rles if isinstance(rles, list) else [rles]))
    return torch.from_numpy(out)


def window_masks(segmentations: list[Any], window: Window, height: int, width: int) -> torch.Tensor:
    """The masks of a crop ``window`` of a ``height`` x ``width`` image, (N, h, w) uint8.

    Polygons are moved into the crop and rasterised there, without the whole image's canvas (the
    outline may differ by a pixel from a crop of the whole image's raster); RLE masks are decoded
    whole and cropped.
    """
    x0, y0, x1, y1 = window
    out = torch.zeros((len(segmentations), y1 - y0, x1 - x0), dtype=torch.uint8)
    for i, seg in enumerate(segmentations):
        if isinstance(seg, list):
            out[i] = polygons_to_masks([shift_polygons(seg, -x0, -y0)], y1 - y0, x1 - x0)[0]
        else:
            out[i] = polygons_to_masks([seg], height, width)[0, y0:y1, x0:x1]
    return out
