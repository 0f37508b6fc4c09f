"""Which rater labelled which multi-rater image: raters may cover different, overlapping or disjoint
image sets, and every strategy trains and validates only on labels that exist.

The dataset answers when it can (``Dataset.rater_image_ids(rater)``, ``Dataset.raters_of(image_id)``);
otherwise the answer is read from each rater's COCO ``images`` list, which is the same thing.
"""

from __future__ import annotations

from typing import Any


def _images_of(dataset: Any, rater: str) -> list[int]:
    method = getattr(dataset, "rater_image_ids", None)
    if callable(method):
        return sorted(int(i) for i in method(rater))
    return sorted(int(im["id"]) for im in dataset.coco(rater)["images"])


class RaterCoverage:
    """The images of each rater and the raters of each image, in the dataset's rater order."""

    def __init__(self, dataset: Any) -> None:
        self.rater_names: list[str] = list(dataset.rater_names)
        self._images = {rater: _images_of(dataset, rater) for rater in self.rater_names}
        self._sets = {rater: set(ids) for rater, ids in self._images.items()}

    def images_of(self, rater: str) -> list[int]:
        """The sorted ids of the images ``rater`` labelled."""
        return list(self._images[rater])

    def raters_of(self, image_id: int) -> list[str]:
        """The raters who labelled ``image_id``, in the dataset's rater order (empty if none)."""
        return [r for r in self.rater_names if int(image_id) in self._sets[r]]

    def labelled(self, rater: str, image_id: int) -> bool:
        """Whether ``rater`` labelled ``image_id``."""
        return int(image_id) in self._sets[rater]

    @property
    def image_ids(self) -> list[int]:
        """Every multi-rater image (labelled by at least one rater), sorted."""
        return sorted(set().union(*self._sets.values()))
