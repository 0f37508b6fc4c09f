"""The base dataset: images the experiment never sees, for the ``pretrain`` job's independent base model.

The paper fine-tunes every model from GOAT, a detector that never saw MultiOrg's labels. Without such a
checkpoint, the workflow trains the base on a dataset of its own: images from the same scene generator,
drawn from a random stream of their own (``BASE_STREAM`` appended to every key of
``generation.synthesize_image``, so no image, label or draw is shared with a synthetic dataset of any seed),
labelled by the simulated pre-annotation detector: its proposals, as they are, under one "rater"
named ``detector``. The labels are those of a generic organoid detector (it proposes dying organoids less
often than viable ones), never those of a rater of the experiment.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from multirater.data.synthetic.generation import check_settings, coco_of_annotations, synthesize_image
from multirater.data.synthetic.raters import RandomStyle, RaterStyle, SystematicStyle
from multirater.data.writer import DatasetContent, write_dataset_folder

BASE_RATER = "detector"
# Appended to the key of every random stream of a base image (a word no experiment key holds there).
BASE_STREAM = (0xBA5E,)
# The detector's proposals, unchanged: everything proposed is kept as drawn, nothing is added.
DETECTOR_LABELS = RaterStyle(
    SystematicStyle(threshold=-math.inf, tightness=0.0, redraw=0.0, min_side=0.0),
    RandomStyle(perception_sd=0.0, miss_rate=1.0, spurious=0.0, jitter=0.0, reject_rate=0.0),
)


def generate_base(out: str | Path, seed: int = 0, images: int = 80, size: int = 256) -> Path:
    """Write the base dataset into ``out`` (ids 1..images, one rater ``detector``, no consensus images);
    return its manifest. A pure function of its arguments, like :func:`generation.generate`."""
    check_settings(images, 0, 1, size)

    def build(image_dir: Path) -> DatasetContent:
        from PIL import Image

        image_dir.mkdir()
        records, annotations = [], []
        for index in range(images):
            image_id = index + 1
            sample = synthesize_image(seed, index, size, {BASE_RATER: DETECTOR_LABELS}, stream=BASE_STREAM)
            file_name = f"base_{image_id:04d}.png"
            pixels = np.round(sample.image * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(image_dir / file_name)
            records.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
            annotations += [(image_id, *a) for a in sample.annotations[BASE_RATER]]
        return DatasetContent(name=f"synthetic-organoids-base-seed{seed}",
                              raters={BASE_RATER: coco_of_annotations(records, annotations)}, consensus=None)

    return write_dataset_folder(out, build, replace_dataset=True)
