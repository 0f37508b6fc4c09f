"""Image files: decoding to float RGB and reading sizes from headers (PNG, TIFF, JPEG; 8/16 bit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multirater.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# The coarsest feature stride of the detectors (ResNet-FPN: 32 px): an image with a shorter side holds less
# than one cell of that feature map at its own resolution. The model would still run on it, resized to its
# min_size, but only on pixels blown up into shapes it never saw: such an image is refused at `check` and
# skipped at `predict` on a folder, never given detections.
MIN_IMAGE_SIDE_PX = 32


def too_small_problem(width: int, height: int) -> str | None:
    """Why an image of this size cannot be used, or None if it can."""
    if min(width, height) < MIN_IMAGE_SIDE_PX:
        return f"image is {width}x{height} px, smaller than the {MIN_IMAGE_SIDE_PX} px a side the detectors can use"
    return None


@dataclass(frozen=True)
class ImageRecord:
    """One image of the dataset, as its COCO record describes it."""

    id: int
    file_name: str
    path: Path
    width: int
    height: int


def load_image(path: str | Path) -> np.ndarray:
    """Read a PNG, TIFF or JPEG (8/16 bit, grey or RGB) as float32 (H, W, 3) in [0, 1].

    Integer pixels are divided by their type's maximum (255 for 8 bit, 65535 for 16 bit), so a 16-bit
    image keeps its full range; float pixels above 1 are divided by the image's maximum.
    """
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
    if np.issubdtype(arr.dtype, np.integer):
        # the image's own dtype range (a 16-bit TIFF keeps its 65536 levels); negative values of signed
        # types carry no brightness and clip to 0
        out = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
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
