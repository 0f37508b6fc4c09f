"""A multi-rater dataset: the manifest, its COCO files and images, validated on load.

Raters may have labelled the same images (``rater_coverage: complete``) or different, overlapping or
disjoint, image sets (``partial``): ``rater_image_ids(rater)`` and ``raters_of(image_id)`` say who labelled
what. The test images are the images of the test label sets (``label_sets``, ``test_image_ids``).

``load_dataset(manifest)`` checks everything it can without decoding images and reports every
problem found (``UserErrors``), each naming the file, the item and the offending value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_json
from multirater.data.images import IMAGE_SUFFIXES, ImageRecord, load_image  # noqa: F401  (re-exported for training/)
from multirater.data.manifest import CONSENSUS, read_manifest
from multirater.data.validation import check_coco, check_repeats, cross_check


class RaterImageIds(list):
    """The rater images, sorted by id: a list of every image some rater labelled.

    Called with a rater's name, the images that rater labelled (raters may cover different images).
    """

    def __init__(self, by_rater: dict[str, list[int]]) -> None:
        super().__init__(sorted(set().union(*by_rater.values())))
        self._by_rater = by_rater

    def __call__(self, rater: str) -> list[int]:
        """The images ``rater`` labelled, sorted by id."""
        if rater not in self._by_rater:
            raise UserError(f"unknown rater {rater!r} (raters: {', '.join(self._by_rater)})")
        return list(self._by_rater[rater])


class Dataset:
    """Validated multi-rater annotations: one COCO dict per rater and per test label set.

    Sources are the raters (training labels, each on the images they labelled) and the test label sets
    (``"consensus"`` first, then the manifest's ``test_label_sets``), all in one namespace.
    """

    def __init__(
        self,
        manifest: Path,
        name: str,
        image_dir: Path,
        cocos: dict[str, dict],
        coco_paths: dict[str, Path],
        rater_names: list[str],
        repeats: dict[str, dict] | None = None,
        rater_coverage: str = "complete",
    ) -> None:
        self.manifest = manifest
        self.name = name
        self.image_dir = image_dir
        self.rater_names = rater_names
        self.rater_coverage = rater_coverage
        self._cocos = cocos
        self._coco_paths = coco_paths
        first = cocos[rater_names[0]]
        self.categories: list[dict] = [dict(c) for c in first["categories"]]
        self.images: dict[int, ImageRecord] = {}
        for source in self.sources:
            for im in cocos[source]["images"]:
                self.images.setdefault(int(im["id"]), ImageRecord(
                    id=int(im["id"]),
                    file_name=str(im["file_name"]),
                    path=image_dir / str(im["file_name"]),
                    width=int(im["width"]),
                    height=int(im["height"]),
                ))
        self._by_image: dict[str, dict[int, list[dict]]] = {}
        for source in self.sources:
            self._by_image[source] = _index_by_image(cocos[source])
        self.rater_image_ids = RaterImageIds({r: sorted(self._by_image[r]) for r in rater_names})
        self._raters_of = {i: [r for r in rater_names if i in self._by_image[r]] for i in self.rater_image_ids}
        self.consensus_image_ids: list[int] = (
            sorted(int(im["id"]) for im in cocos[CONSENSUS]["images"]) if CONSENSUS in cocos else []
        )
        # Second annotation passes (intra-rater agreement only): kept apart from the sources, so no
        # training or evaluation code ever reads them as labels.
        self._repeats = dict(repeats or {})
        self._repeat_by_image = {rater: _index_by_image(coco) for rater, coco in self._repeats.items()}

    @property
    def label_sets(self) -> list[str]:
        """The test label sets: ``"consensus"`` first if there is one, then the manifest's ``test_label_sets``."""
        return [s for s in self._cocos if s not in self.rater_names]

    @property
    def sources(self) -> list[str]:
        """Rater names, then the test label sets (``"consensus"`` first)."""
        return self.rater_names + self.label_sets

    @property
    def has_consensus(self) -> bool:
        """Whether the manifest names a consensus (test) file."""
        return CONSENSUS in self._cocos

    @property
    def test_image_ids(self) -> list[int]:
        """The test images: every image of a test label set, sorted by id."""
        return sorted(set().union(*(self._by_image[s] for s in self.label_sets)))

    def label_set_image_ids(self, label_set: str) -> list[int]:
        """The images of one test label set, sorted by id."""
        if label_set not in self.label_sets:
            known = ", ".join(self.label_sets) or "none"
            raise UserError(f"unknown test label set {label_set!r} (label sets: {known})", self.manifest)
        return sorted(self._by_image[label_set])

    def raters_of(self, image_id: int) -> list[str]:
        """The raters who labelled an image, in the manifest's order (none for a test image)."""
        if int(image_id) not in self.images:
            raise UserError(f"image id {image_id} is not in the dataset", self.manifest)
        return list(self._raters_of.get(int(image_id), []))

    def _check_source(self, source: str) -> None:
        if source not in self._cocos:
            known = ", ".join(self.sources)
            raise UserError(f"unknown annotation source {source!r} (known: {known})", self.manifest)

    def coco(self, source: str) -> dict:
        """The validated COCO dict of a rater or a test label set."""
        self._check_source(source)
        return self._cocos[source]

    def coco_path(self, source: str) -> Path:
        """The COCO file a source was read from."""
        self._check_source(source)
        return self._coco_paths[source]

    def annotations(self, source: str, image_id: int) -> list[dict]:
        """A source's COCO annotations of one image (empty if it drew nothing there)."""
        self._check_source(source)
        try:
            return self._by_image[source][int(image_id)]
        except KeyError:
            raise UserError(
                f"image id {image_id} is not annotated by {source}", self._coco_paths[source]
            ) from None

    def boxes(self, source: str, image_id: int) -> np.ndarray:
        """A source's boxes on one image as float64 (N, 4) ``[x, y, w, h]``."""
        anns = self.annotations(source, image_id)
        if not anns:
            return np.zeros((0, 4), dtype=np.float64)
        return np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)

    def labels(self, source: str, image_id: int) -> np.ndarray:
        """The category ids of ``boxes(source, image_id)`` as int64 (N,)."""
        return np.array([a["category_id"] for a in self.annotations(source, image_id)], dtype=np.int64)

    @property
    def repeated_raters(self) -> list[str]:
        """Raters with a second annotation pass (the manifest's ``repeats``), in the raters' order."""
        return [r for r in self.rater_names if r in self._repeats]

    def repeat_image_ids(self, rater: str) -> list[int]:
        """The images of a rater's second pass, sorted by id."""
        return sorted(self._repeat_by_image[self._check_repeated(rater)])

    def repeat_boxes(self, rater: str, image_id: int) -> np.ndarray:
        """A rater's boxes on one image in their second pass, float64 (N, 4) ``[x, y, w, h]``."""
        anns = self._repeat_by_image[self._check_repeated(rater)].get(int(image_id))
        if anns is None:
            raise UserError(f"image id {image_id} is not in {rater}'s second pass", self.manifest)
        return np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)

    def _check_repeated(self, rater: str) -> str:
        if rater not in self._repeats:
            raise UserError(f"{rater!r} has no second annotation pass (repeats: "
                            f"{', '.join(self.repeated_raters) or 'none'})", self.manifest)
        return rater

    def object_counts(self, image_id: int) -> dict[str, int]:
        """Number of annotations of every rater who labelled one rater image."""
        return {r: len(self.annotations(r, image_id)) for r in self.raters_of(image_id)}


def load_dataset(manifest: str | Path) -> Dataset:
    """Read and validate a dataset manifest; raise every problem found at once."""
    errors = ErrorCollector()
    parsed = read_manifest(manifest, errors)
    if not parsed.image_dir.is_dir():
        errors.add(f"image folder not found: {parsed.image_dir}", parsed.path, "images")
    files = parsed.files
    cocos: dict[str, dict] = {}
    checked_files: set[str] = set()
    for source, path in files.items():
        try:
            raw = read_json(path)
        except UserError as exc:
            errors.errors.append(exc)
            continue
        coco = check_coco(raw, path, parsed.image_dir, errors, checked_files)
        if coco is not None:
            cocos[source] = coco
    repeats: dict[str, dict] = {}
    for rater, path in parsed.repeat_files.items():
        try:
            coco = check_coco(read_json(path), path, parsed.image_dir, errors, checked_files)
        except UserError as exc:
            errors.errors.append(exc)
            continue
        if coco is not None:
            repeats[rater] = coco
    rater_names = list(parsed.rater_files)
    cross_check(cocos, files, rater_names, errors, parsed.rater_coverage)
    check_repeats(repeats, parsed.repeat_files, cocos, errors)
    errors.raise_if_any()
    return Dataset(parsed.path, parsed.name, parsed.image_dir, cocos, {s: files[s] for s in cocos}, rater_names,
                   repeats, parsed.rater_coverage)


def _index_by_image(coco: dict) -> dict[int, list[dict]]:
    """image id -> its annotations (every listed image, empty if none)."""
    index: dict[int, list[dict]] = {int(im["id"]): [] for im in coco["images"]}
    for ann in coco["annotations"]:
        index[int(ann["image_id"])].append(ann)
    return index
