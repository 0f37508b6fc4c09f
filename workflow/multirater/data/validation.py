"""Validation of a dataset's COCO files, each on its own and against each other, and of its image files.

Every check adds its problems to an ``ErrorCollector`` (``FILE: ITEM: PROBLEM``) instead of stopping,
so ``multirater check`` reports every problem in one pass. Values and boxes are judged by the shared
COCO validator (``multirater.io.coco``).
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Any

from multirater.core.errors import ErrorCollector
from multirater.data.image_integrity import pixel_data_problem
from multirater.data.images import ImageRecord, image_size, too_small_problem
from multirater.io.coco import bbox_problem, is_int, is_number, outside_problem

PROVENANCE = ("pretrained", "manual")


def check_coco(
    coco: Any, path: Path, image_dir: Path, errors: ErrorCollector, checked_files: set[str] | None = None
) -> dict | None:
    """Check one COCO detection file on its own; return it if usable for cross-file checks.

    ``checked_files`` holds image file names already checked for existence (by an earlier file),
    so a missing image is reported once, not once per rater.
    """
    if not isinstance(coco, dict):
        errors.add(f"expected a COCO object, got {type(coco).__name__}", path)
        return None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            errors.add(f"missing or not a list (got {coco.get(key)!r:.40})", path, key)
            return None
    checked_files = set() if checked_files is None else checked_files
    category_ids = _check_categories(coco["categories"], path, errors)
    images, rejected = _check_images(coco["images"], path, image_dir, errors, checked_files)
    _check_annotations(coco["annotations"], images, rejected, category_ids, path, errors)
    return coco


def _check_categories(categories: list, path: Path, errors: ErrorCollector) -> set[int]:
    ids: set[int] = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            errors.add(f"needs an integer id and a name, got {cat!r:.60}", path, f"categories[{i}]")
            continue
        if cat["id"] in ids:
            errors.add(f"duplicate category id {cat['id']}", path, f"categories[{i}]")
        ids.add(cat["id"])
    return ids


def _check_images(
    records: list, path: Path, image_dir: Path, errors: ErrorCollector, checked_files: set[str]
) -> tuple[dict[int, dict], set[int]]:
    """The valid image records by id, and the ids listed but invalid (already reported, so their
    annotations are not reported again)."""
    images: dict[int, dict] = {}
    rejected: set[int] = set()
    for i, im in enumerate(records):
        if not isinstance(im, dict) or not is_int(im.get("id")):
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
            if not is_int(im.get(key)) or im[key] <= 0:
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
    return images, rejected


def _check_annotations(
    annotations: list,
    images: dict[int, dict],
    rejected: set[int],
    category_ids: set[int],
    path: Path,
    errors: ErrorCollector,
) -> None:
    ann_ids: set[Any] = set()
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            errors.add(f"expected an object, got {ann!r:.60}", path, f"annotations[{i}]")
            continue
        aid = ann.get("id")
        item = f"annotation {aid}" if aid is not None else f"annotations[{i}]"
        if not is_int(aid):
            errors.add(f"id must be an integer, got {aid!r}", path, item)
        elif aid in ann_ids:
            errors.add(f"duplicate annotation id {aid}", path, item)
        else:
            ann_ids.add(aid)
        image = images.get(ann.get("image_id")) if is_int(ann.get("image_id")) else None
        if image is None and ann.get("image_id") not in rejected:
            errors.add(f"image_id {ann.get('image_id')!r} is not in this file's images", path, item)
        if ann.get("category_id") not in category_ids or not is_int(ann.get("category_id")):
            errors.add(
                f"unknown category_id {ann.get('category_id')!r} (known: {sorted(category_ids)})", path, item
            )
        problem = bbox_problem(ann.get("bbox"), empty_ok=False)
        if problem is None and image is not None:
            problem = outside_problem(ann["bbox"], image)
        if problem is not None:
            errors.add(problem, path, item)
        attrs = ann.get("attributes")
        if attrs is not None:
            source = attrs.get("source") if isinstance(attrs, dict) else attrs
            if not isinstance(attrs, dict) or (source is not None and source not in PROVENANCE):
                errors.add(f"attributes.source must be pretrained or manual, got {source!r}", path, item)
        seg = ann.get("segmentation")
        if seg is not None and not _valid_segmentation(seg):
            errors.add(
                f"segmentation must be a list of polygons [x1, y1, x2, y2, ...] or RLE, got {seg!r:.60}", path, item
            )


def _valid_segmentation(seg: Any) -> bool:
    if isinstance(seg, dict):  # RLE
        return "counts" in seg and "size" in seg
    if not isinstance(seg, list):
        return False
    return all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(is_number(v) for v in p) for p in seg
    )


def _categories(coco: dict) -> dict:
    return {c.get("id"): c.get("name") for c in coco["categories"] if isinstance(c, dict)}


def _image_names(coco: dict) -> dict:
    """image id -> file_name (the first record of a duplicated id: duplicates are reported elsewhere)."""
    out: dict = {}
    for im in coco["images"]:
        if isinstance(im, dict) and "id" in im:
            out.setdefault(im["id"], im.get("file_name"))
    return out


def cross_check(
    cocos: dict[str, dict],
    files: dict[str, Path],
    rater_names: list[str],
    errors: ErrorCollector,
    coverage: str = "complete",
) -> None:
    """Files that must agree with each other.

    The same categories everywhere. Raters: with ``coverage="complete"`` every rater lists the same
    images; with ``"partial"`` they may list different images, but an id names the same file in every
    file and every rater lists some image. Test label sets (every non-rater source): none of their images
    is a rater image, and they agree among themselves on ids and file names.
    """
    present = [r for r in rater_names if r in cocos]
    if not present:
        return
    ref_name = present[0]
    ref_file = files[ref_name]
    ref_cats = _categories(cocos[ref_name])
    for source, coco in cocos.items():
        if source != ref_name and _categories(coco) != ref_cats:
            errors.add(
                f"categories {_categories(coco)} differ from {ref_file.name}'s {ref_cats}", files[source], "categories"
            )
    if coverage == "complete":
        _check_same_images(cocos, files, present, errors)
    else:
        for rater in present:
            if not _image_names(cocos[rater]):
                errors.add(f"rater {rater} lists no image (every rater needs images to train on)", files[rater],
                           "images")
        _check_same_ids(cocos, files, present, errors)
    rater_images: dict = {}
    for rater in present:
        for iid, fname in _image_names(cocos[rater]).items():
            rater_images.setdefault(iid, fname)
    label_sets = [s for s in cocos if s not in rater_names]
    for label_set in label_sets:
        _check_test_disjoint(label_set, _image_names(cocos[label_set]), rater_images, files[label_set], errors)
    _check_same_ids(cocos, files, label_sets, errors)


def _check_same_images(
    cocos: dict[str, dict], files: dict[str, Path], raters: list[str], errors: ErrorCollector
) -> None:
    """Every rater lists the first rater's images, under the same ids and file names."""
    ref_name, ref_file = raters[0], files[raters[0]]
    ref_imgs = _image_names(cocos[ref_name])
    hint = " (raters who labelled different images: set rater_coverage: partial in the manifest)"
    for rater in raters[1:]:
        other = _image_names(cocos[rater])
        for iid in sorted(set(ref_imgs) - set(other)):
            errors.add(
                f"image {ref_imgs[iid]!r} is listed by {ref_name} ({ref_file.name}) but not by {rater}{hint}",
                files[rater],
                f"image {iid}",
            )
        for iid in sorted(set(other) - set(ref_imgs)):
            errors.add(
                f"image {other[iid]!r} is listed by {rater} but not by {ref_name} ({ref_file.name}){hint}",
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


def _check_same_ids(cocos: dict[str, dict], files: dict[str, Path], sources: list[str], errors: ErrorCollector) -> None:
    """Across ``sources``, an image id always names the same file and a file always has the same id."""
    name_of: dict = {}  # id -> (file_name, first source listing it)
    id_of: dict = {}  # file_name -> (id, first source listing it)
    for source in sources:
        for iid, fname in _image_names(cocos[source]).items():
            known_name, by = name_of.setdefault(iid, (fname, source))
            if known_name != fname:
                errors.add(f"file_name {fname!r} differs from {by}'s {known_name!r} for the same id", files[source],
                           f"image {iid}")
                continue
            known_id, by = id_of.setdefault(fname, (iid, source))
            if known_id != iid:
                errors.add(f"image {fname!r} has id {iid} here but id {known_id} in {by}'s file", files[source],
                           f"image {iid}")


def check_repeats(
    repeats: dict[str, dict], repeat_files: dict[str, Path], cocos: dict[str, dict], errors: ErrorCollector
) -> None:
    """A rater's second pass covers only images of their own file (same ids and file names) and uses
    the same categories."""
    for rater, coco in repeats.items():
        if rater not in cocos:  # the rater's own file is unusable: reported already
            continue
        path = repeat_files[rater]
        if _categories(coco) != _categories(cocos[rater]):
            errors.add(f"categories {_categories(coco)} differ from {rater}'s {_categories(cocos[rater])}", path,
                       "categories")
        own = _image_names(cocos[rater])
        for iid, fname in _image_names(coco).items():
            if iid not in own:
                errors.add(f"image id {iid} ({fname!r}) is not one of {rater}'s images", path, f"image {iid}")
            elif fname != own[iid]:
                errors.add(f"file_name {fname!r} differs from {rater}'s {own[iid]!r} for the same id", path,
                           f"image {iid}")


def _check_test_disjoint(label_set: str, test_images: dict, rater_images: dict, path: Path,
                         errors: ErrorCollector) -> None:
    """No image of a test label set is a rater image (by id or by file name)."""
    rater_files = set(rater_images.values())
    for iid, fname in test_images.items():
        if iid in rater_images:
            errors.add(
                f"{label_set} image id {iid} ({fname!r}) is also a rater image ({rater_images[iid]!r})",
                path,
                f"image {iid}",
            )
        elif fname in rater_files:
            errors.add(f"{label_set} image {fname!r} is also annotated in the rater files", path, f"image {iid}")


def check_images(images: Mapping[int, ImageRecord]) -> ErrorCollector:
    """Deeper check used by ``multirater check``: every image (a dataset's ``images``) has a header that
    reads, gives its declared size, a size the detectors can use, and its pixel data is whole (from the
    file's structure, without decoding it)."""
    errors = ErrorCollector()
    for iid in sorted(images):
        rec = images[iid]
        try:
            width, height = image_size(rec.path)
            problem = pixel_data_problem(rec.path)
        except Exception as exc:  # any decoder failure is the file's problem
            errors.add(f"cannot read image ({exc})", rec.path, f"image {iid}")
            continue
        if problem is None and (width, height) != (rec.width, rec.height):
            problem = f"image is {width}x{height} px but the annotations say {rec.width}x{rec.height}"
        problem = problem or too_small_problem(width, height)
        if problem is not None:
            errors.add(problem, rec.path, f"image {iid}")
    return errors
