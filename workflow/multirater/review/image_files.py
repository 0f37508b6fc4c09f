"""Which image file each image id of a detections file is: a folder of new images (``multirater predict --images
FOLDER`` records each id's file in ``meta.file_names``) or a dataset's images (ids of the dataset)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multirater.core.errors import UserError
from multirater.io.detections import Detections


@dataclass(frozen=True)
class ImageFiles:
    """The image folder and, by image id, each image's path relative to it ('/'-separated)."""

    folder: Path
    names: dict[int, str]

    def path(self, image_id: int) -> Path:
        return self.folder / self.names[image_id]


def image_files(detections: Detections, detections_path: str, images: str | None, dataset: str | None,
                must_exist: bool = True) -> ImageFiles:
    """The files of every image of ``detections``, from ``--images FOLDER`` or ``--dataset dataset.yaml``."""
    if (images is None) == (dataset is None):
        raise UserError("give the images the detections were made on: --images FOLDER (new images) or "
                        "--dataset dataset.yaml (a dataset's images)", None, "--images")
    ids = [int(i) for i in detections.image_ids.tolist()]
    if dataset is not None:
        from multirater.data.dataset import load_dataset

        data = load_dataset(dataset)
        unknown = [i for i in ids if i not in data.images]
        if unknown:
            raise UserError(f"detections on image ids the dataset {dataset} does not hold: {unknown[:5]}",
                            detections_path)
        return ImageFiles(data.image_dir, {i: data.images[i].file_name for i in ids})
    folder = Path(images)
    if not folder.is_dir():
        raise UserError("no such folder of images", folder, "--images")
    names = detections.meta.get("file_names") if isinstance(detections.meta, dict) else None
    if not isinstance(names, dict):
        raise UserError("meta.file_names is missing: these detections were not predicted on a folder of images "
                        "(give --dataset for a dataset's images)", detections_path)
    found: dict[int, str] = {}
    for image_id in ids:
        name = names.get(str(image_id))
        if not isinstance(name, str) or not name:
            raise UserError(f"meta.file_names has no file name for image {image_id}", detections_path)
        if must_exist and not (folder / name).is_file():
            raise UserError(f"image file not found: {folder / name}", detections_path, f"image {image_id}")
        found[image_id] = name
    return ImageFiles(folder, found)
