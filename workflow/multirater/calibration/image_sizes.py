"""The image sizes that the detection-aware calibrator's relative box features need.

A dataset's images carry their width and height; a folder of new images (``multirater predict --images
FOLDER``) is read through the detections' ``meta.file_names`` (image id -> file name) and each image's header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multirater.calibration.calibrators import relative_box_features
from multirater.core.errors import UserError
from multirater.data.dataset import Dataset
from multirater.data.images import image_size
from multirater.io.detections import Detections

ImageSizes = dict[int, tuple[float, float]]


def dataset_image_sizes(dataset: Dataset) -> ImageSizes:
    """(width, height) of every image of the dataset, by image id."""
    return {image_id: (float(rec.width), float(rec.height)) for image_id, rec in dataset.images.items()}


def folder_image_sizes(folder: str | Path, detections: Detections, detections_name: str) -> ImageSizes:
    """(width, height) of every image of ``detections``, found in ``folder`` by ``meta.file_names``."""
    folder = Path(folder)
    names = detections.meta.get("file_names") if isinstance(detections.meta, dict) else None
    if not isinstance(names, dict):
        raise UserError("meta.file_names is missing: the detections were not predicted on a folder of images",
                        detections_name)
    sizes: ImageSizes = {}
    for image_id in detections.image_ids.tolist():
        name = names.get(str(image_id))
        if not isinstance(name, str):
            raise UserError(f"meta.file_names has no file name for image {image_id}", detections_name)
        path = folder / name
        if not path.is_file():
            raise UserError(f"image file not found: {path}", detections_name, f"image {image_id}")
        try:
            width, height = image_size(path)
        except Exception as exc:  # any decoder failure is the file's problem
            raise UserError(f"cannot read the image's size ({exc})", path) from None
        sizes[int(image_id)] = (float(width), float(height))
    return sizes


def detection_box_features(detections: Detections, sizes: ImageSizes, detections_name: str) -> np.ndarray:
    """(N, 4) relative cx, cy, w, h of every detection; an image of unknown size is an error naming it."""
    widths = np.empty(len(detections))
    heights = np.empty(len(detections))
    for k, image_id in enumerate(detections.image_id.tolist()):
        if image_id not in sizes:
            raise UserError(f"the size of image {image_id} is unknown (not an image of the dataset)",
                            detections_name)
        widths[k], heights[k] = sizes[image_id]
    return relative_box_features(detections.boxes, widths, heights)
