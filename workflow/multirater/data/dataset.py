"""A multi-rater dataset: the manifest, its COCO files and images, validated on load.

``load_dataset(manifest)`` checks everything it can without decoding images and reports every
problem found (``UserErrors``), each naming the file, the item and the offending value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import ErrorCollector, UserError
from multirater.core.files import read_json, read_yaml

CONSENSUS = "consensus"
RATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
PROVENANCE = ("pretrained", "manual")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# A box may stick out of its image by this much (rounding of hand-drawn boxes).
OUTSIDE_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str
    path: Path
    width: int
    height: int


class Dataset:
    """Validated multi-rater annotations: one COCO dict per rater, optionally a consensus one."""

    def __init__(
        self,
        manifest: Path,
        name: str,
        image_dir: Path,
        cocos: dict[str, dict],
        coco_paths: dict[str, Path],
        rater_names: list[str],
    ) -> None:
        self.manifest = manifest
        self.name = name
        self.image_dir = image_dir
        self.rater_names = rater_names
        self._cocos = cocos
        self._coco_paths = coco_paths
        first = cocos[rater_names[0]]
        self.categories: list[dict] = [dict(c) for c in first["categories"]]
        self.images: dict[int, ImageRecord] = {}
        for source in self.sources:
            for im in cocos[source]["images"]:
                self.images[int(im["id"])] = ImageRecord(
                    id=int(im["id"]),
                    file_name=str(im["file_name"]),
                    path=image_dir / str(im["file_name"]),
                    width=int(im["width"]),
                    height=int(im["height"]),
                )
        self.rater_image_ids: list[int] = sorted(int(im["id"]) for im in first["images"])
        self.consensus_image_ids: list[int] = (
            sorted(int(im["id"]) for im in cocos[CONSENSUS]["images"]) if CONSENSUS in cocos else []
        )
        self._by_image: dict[str, dict[int, list[dict]]] = {}
        for source in self.sources:
            index: dict[int, list[dict]] = {int(im["id"]): [] for im in cocos[source]["images"]}
            for ann in cocos[source]["annotations"]:
                index[int(ann["image_id"])].append(ann)
            self._by_image[source] = index

    @property
    def sources(self) -> list[str]:
        """Rater names, then ``"consensus"`` if the dataset has one."""
        return self.rater_names + ([CONSENSUS] if CONSENSUS in self._cocos else [])

    @property
    def has_consensus(self) -> bool:
        return CONSENSUS in self._cocos

    def _check_source(self, source: str) -> None:
        if source not in self._cocos:
            known = ", ".join(self.sources)
            raise UserError(f"unknown annotation source {source!r} (known: {known})", self.manifest)

    def coco(self, source: str) -> dict:
        self._check_source(source)
        return self._cocos[source]

    def coco_path(self, source: str) -> Path:
        self._check_source(source)
        return self._coco_paths[source]

    def annotations(self, source: str, image_id: int) -> list[dict]:
        self._check_source(source)
        try:
            return self._by_image[source][int(image_id)]
        except KeyError:
            raise UserError(
                f"image id {image_id} is not annotated by {source}", self._coco_paths[source]
            ) from None

    def boxes(self, source: str, image_id: int) -> np.ndarray:
        anns = self.annotations(source, image_id)
        if not anns:
            return np.zeros((0, 4), dtype=np.float64)
        return np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)

    def labels(self, source: str, image_id: int) -> np.ndarray:
        return np.array([a["category_id"] for a in self.annotations(source, image_id)], dtype=np.int64)

    def object_counts(self, image_id: int) -> dict[str, int]:
        """Number of annotations of every rater on one multi-rater image."""
        return {r: len(self.annotations(r, image_id)) for r in self.rater_names}


# ----------------------------------------------------------------------------- images


def load_image(path: str | Path) -> np.ndarray:
    """Read a PNG, TIFF or JPEG (8/16 bit, grey or RGB) as float32 (H, W, 3) in [0, 1]."""
    path = Path(path)
    if not path.exists():
        raise UserError("image file not found", path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(path))
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("P", "LA", "PA", "CMYK", "YCbCr", "1"):
                    im = im.convert("RGBA" if "A" in im.mode else "RGB")
                arr = np.asarray(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = arr.astype(np.uint16) if arr.max(initial=0) <= 65535 else arr
    except UserError:
        raise
    except Exception as exc:  # any decoder failure is the file's problem
        raise UserError(f"cannot read image ({exc})", path) from None
    return _to_float_rgb(arr, path)


def _to_float_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    # Channel-first TIFFs (C, H, W) are common in microscopy.
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]  # alpha carries no signal
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise UserError(f"unsupported image shape {arr.shape} (need grey or RGB)", path)
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype in (np.uint16, np.int32, np.uint32, np.int16):
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == bool:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        top = float(np.nanmax(out)) if out.size else 1.0
        if top > 1.0:
            out = out / top
    else:
        raise UserError(f"unsupported pixel type {arr.dtype}", path)
    out = np.clip(np.nan_to_num(out), 0.0, 1.0)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out, dtype=np.float32)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, reading only its header where the format allows."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
            return int(shape[2]), int(shape[1])
        return int(shape[1]), int(shape[0])
    from PIL import Image

    with Image.open(path) as im:
        return int(im.size[0]), int(im.size[1])


# ----------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_coco(
    coco: Any, path: Path, image_dir: Path, errors: ErrorCollector, checked_files: set[str] | None = None
) -> dict | None:
    """Check one COCO detection file on its own; return it if usable for cross-file checks.

    ``checked_files`` holds image file names already checked for existence (by an earlier file),
    so a missing image is reported once, not once per rater.
    """
    checked_files = set() if checked_files is None else checked_files
    if not isinstance(coco, dict):
        errors.add(f"expected a COCO object, got {type(coco).__name__}", path)
        return None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            errors.add(f"missing or not a list (got {coco.get(key)!r:.40})", path, key)
            return None

    category_ids: set[int] = set()
    for i, cat in enumerate(coco["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            errors.add(f"needs an integer id and a name, got {cat!r:.60}", path, f"categories[{i}]")
            continue
        if cat["id"] in category_ids:
            errors.add(f"duplicate category id {cat['id']}", path, f"categories[{i}]")
        category_ids.add(cat["id"])

    images: dict[int, dict] = {}
    rejected: set[int] = set()  # listed but invalid: already reported, so their annotations are not
    for i, im in enumerate(coco["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            errors.add(f"needs an integer id, got {im!r:.60}", path, f"images[{i}]")
            continue
        item = f"image {im['id']}"
        if im["id"] in images:
            errors.add(f"duplicate image id {im['id']}", path, item)
            continue
        ok = True
        name = im.get("file_name")
        if not isinstance(name, str) or not name:
            errors.add(f"file_name must be a non-empty string, got {name!r}", path, item)
            ok = False
        for key in ("width", "height"):
            if not _is_int(im.get(key)) or im[key] <= 0:
                errors.add(f"{key} must be a positive integer, got {im.get(key)!r}", path, item)
                ok = False
        if isinstance(name, str) and name and name not in checked_files:
            checked_files.add(name)
            if not (image_dir / name).is_file():
                errors.add(f"image file not found: {image_dir / name}", path, item)
        if ok:
            images[im["id"]] = im
        else:
            rejected.add(im["id"])

    ann_ids: set[Any] = set()
    for i, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            errors.add(f"expected an object, got {ann!r:.60}", path, f"annotations[{i}]")
            continue
        aid = ann.get("id")
        item = f"annotation {aid}" if aid is not None else f"annotations[{i}]"
        if not _is_int(aid):
            errors.add(f"id must be an integer, got {aid!r}", path, item)
        elif aid in ann_ids:
            errors.add(f"duplicate annotation id {aid}", path, item)
        else:
            ann_ids.add(aid)
        image = images.get(ann.get("image_id")) if _is_int(ann.get("image_id")) else None
        if image is None and ann.get("image_id") not in rejected:
            errors.add(f"image_id {ann.get('image_id')!r} is not in this file's images", path, item)
        if ann.get("category_id") not in category_ids or not _is_int(ann.get("category_id")):
            errors.add(
                f"unknown category_id {ann.get('category_id')!r} (known: {sorted(category_ids)})",
                path,
                item,
            )
        _validate_bbox(ann.get("bbox"), image, path, item, errors)
        attrs = ann.get("attributes")
        if attrs is not None:
            source = attrs.get("source") if isinstance(attrs, dict) else attrs
            if not isinstance(attrs, dict) or (source is not None and source not in PROVENANCE):
                errors.add(f"attributes.source must be pretrained or manual, got {source!r}", path, item)
        seg = ann.get("segmentation")
        if seg is not None and not _valid_segmentation(seg):
            errors.add(f"segmentation must be a list of polygons [x1, y1, x2, y2, ...] or RLE, got {seg!r:.60}", path, item)
    return coco


def _validate_bbox(bbox: Any, image: dict | None, path: Path, item: str, errors: ErrorCollector) -> None:
    if not isinstance(bbox, list) or len(bbox) != 4:
        errors.add(f"bbox must be a list [x, y, w, h], got {bbox!r}", path, item)
        return
    if not all(_is_number(v) for v in bbox):
        errors.add(f"bbox has a non-numeric or non-finite coordinate: {bbox!r}", path, item)
        return
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        errors.add(f"bbox width and height must be positive, got w={w}, h={h} in {bbox}", path, item)
        return
    if image is not None:
        tol = OUTSIDE_TOLERANCE_PX
        if x < -tol or y < -tol or x + w > image["width"] + tol or y + h > image["height"] + tol:
            errors.add(
                f"bbox {bbox} lies outside image {image['id']} "
                f"({image['width']}x{image['height']} px) by more than {tol:g} px",
                path,
                item,
            )


def _valid_segmentation(seg: Any) -> bool:
    if isinstance(seg, dict):  # RLE
        return "counts" in seg and "size" in seg
    if not isinstance(seg, list):
        return False
    return all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_number(v) for v in p) for p in seg
    )


def _read_manifest(manifest: Path) -> dict:
    data = read_yaml(manifest)
    if not isinstance(data, dict):
        raise UserError(f"expected a mapping with images and raters, got {type(data).__name__}", manifest)
    return data


def load_dataset(manifest: str | Path) -> Dataset:
    """Read and validate a dataset manifest; raise every problem found at once."""
    manifest = Path(manifest)
    data = _read_manifest(manifest)
    root = manifest.parent
    errors = ErrorCollector()

    unknown = sorted(set(data) - {"name", "images", "raters", "consensus", "description"})
    for key in unknown:
        errors.add("unknown key (expected name, images, raters, consensus)", manifest, key)
    if not isinstance(data.get("images"), str):
        errors.add(f"must name the image folder, got {data.get('images')!r}", manifest, "images")
        errors.raise_if_any()
    image_dir = (root / data["images"]).resolve() if not Path(data["images"]).is_absolute() else Path(data["images"])
    if not image_dir.is_dir():
        errors.add(f"image folder not found: {image_dir}", manifest, "images")
    raters = data.get("raters")
    if not isinstance(raters, dict) or not raters:
        errors.add(f"must map rater names to COCO files, got {raters!r}", manifest, "raters")
        errors.raise_if_any()
    files: dict[str, Path] = {}
    for name, rel in raters.items():
        if not isinstance(name, str) or not RATER_NAME.match(name) or name == CONSENSUS:
            errors.add(
                f"invalid rater name {name!r} (letters, digits, _ and . only; not 'consensus')",
                manifest,
                f"raters.{name}",
            )
            continue
        if not isinstance(rel, str):
            errors.add(f"must be a path to a COCO JSON file, got {rel!r}", manifest, f"raters.{name}")
            continue
        files[name] = root / rel
    if data.get("consensus") is not None:
        if isinstance(data["consensus"], str):
            files[CONSENSUS] = root / data["consensus"]
        else:
            errors.add(f"must be a path to a COCO JSON file, got {data['consensus']!r}", manifest, "consensus")

    cocos: dict[str, dict] = {}
    checked_files: set[str] = set()
    for source, path in files.items():
        try:
            raw = read_json(path)
        except UserError as exc:
            errors.errors.append(exc)
            continue
        coco = _validate_coco(raw, path, image_dir, errors, checked_files)
        if coco is not None:
            cocos[source] = coco

    rater_names = [r for r in files if r != CONSENSUS]
    _cross_check(cocos, files, rater_names, errors)
    errors.raise_if_any()
    name = str(data.get("name") or manifest.parent.name)
    return Dataset(manifest, name, image_dir, cocos, {s: files[s] for s in cocos}, rater_names)


def _cross_check(
    cocos: dict[str, dict], files: dict[str, Path], rater_names: list[str], errors: ErrorCollector
) -> None:
    """Same categories and images in every rater file; consensus images disjoint from them."""
    present = [r for r in rater_names if r in cocos]
    if not present:
        return
    ref_name = present[0]
    ref = cocos[ref_name]

    def cats(coco: dict) -> dict:
        return {c.get("id"): c.get("name") for c in coco["categories"] if isinstance(c, dict)}

    def imgs(coco: dict) -> dict:
        out: dict = {}
        for im in coco["images"]:
            if isinstance(im, dict) and "id" in im:
                out.setdefault(im["id"], im.get("file_name"))  # a duplicate id is reported elsewhere
        return out

    ref_cats, ref_imgs = cats(ref), imgs(ref)
    for source, coco in cocos.items():
        if source == ref_name:
            continue
        if cats(coco) != ref_cats:
            errors.add(
                f"categories {cats(coco)} differ from {files[ref_name].name}'s {ref_cats}",
                files[source],
                "categories",
            )
    for rater in present[1:]:
        other = imgs(cocos[rater])
        for iid in sorted(set(ref_imgs) - set(other)):
            errors.add(
                f"image {ref_imgs[iid]!r} is listed by {ref_name} ({files[ref_name].name}) but not by {rater}",
                files[rater],
                f"image {iid}",
            )
        for iid in sorted(set(other) - set(ref_imgs)):
            errors.add(
                f"image {other[iid]!r} is listed by {rater} but not by {ref_name} ({files[ref_name].name})",
                files[rater],
                f"image {iid}",
            )
        for iid in sorted(set(other) & set(ref_imgs)):
            if other[iid] != ref_imgs[iid]:
                errors.add(
                    f"file_name {other[iid]!r} differs from {ref_name}'s {ref_imgs[iid]!r} for the same id",
                    files[rater],
                    f"image {iid}",
                )
    if CONSENSUS in cocos:
        rater_files = set(ref_imgs.values())
        for iid, fname in imgs(cocos[CONSENSUS]).items():
            if iid in ref_imgs:
                errors.add(
                    f"consensus image id {iid} ({fname!r}) is also a rater image ({ref_imgs[iid]!r})",
                    files[CONSENSUS],
                    f"image {iid}",
                )
            elif fname in rater_files:
                errors.add(
                    f"consensus image {fname!r} is also annotated in the rater files",
                    files[CONSENSUS],
                    f"image {iid}",
                )


def check_images(dataset: Dataset) -> ErrorCollector:
    """Deeper check used by ``multirater check``: every image decodes and has its declared size."""
    errors = ErrorCollector()
    for iid in sorted(dataset.images):
        rec = dataset.images[iid]
        try:
            width, height = image_size(rec.path)
        except Exception as exc:
            errors.add(f"cannot read image ({exc})", rec.path, f"image {iid}")
            continue
        if (width, height) != (rec.width, rec.height):
            errors.add(
                f"image is {width}x{height} px but the annotations say {rec.width}x{rec.height}",
                rec.path,
                f"image {iid}",
            )
    return errors


# ----------------------------------------------------------------------------- splits


def make_splits(dataset: Dataset, val_fraction: float = 0.1875, seed: int = 42) -> dict:
    """Train/validation split of the multi-rater images, stratified by object count; test = consensus.

    Images are ordered by their mean object count over raters (ties broken at random from ``seed``)
    and cut into as many consecutive strata as there are validation images; one image of each stratum,
    drawn at random, goes to validation. With the defaults 80 images give 65 train / 15 validation.
    """
    if not (0.0 < val_fraction < 1.0):
        raise UserError(f"must be between 0 and 1 (exclusive), got {val_fraction}", None, "--val-fraction")
    ids = np.array(dataset.rater_image_ids, dtype=np.int64)
    if len(ids) < 2:
        raise UserError(f"need at least 2 multi-rater images to split, got {len(ids)}", dataset.manifest)
    n_val = int(min(max(round(val_fraction * len(ids)), 1), len(ids) - 1))
    rng = np.random.default_rng(seed)
    mean_counts = np.array([np.mean(list(dataset.object_counts(int(i)).values())) for i in ids])
    order = np.lexsort((rng.random(len(ids)), mean_counts))
    val = [int(ids[stratum[rng.integers(len(stratum))]]) for stratum in np.array_split(order, n_val)]
    train = sorted(set(ids.tolist()) - set(val))
    return {
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "train": train,
        "val": sorted(val),
        "test": list(dataset.consensus_image_ids),
    }
