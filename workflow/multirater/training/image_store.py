"""The pixels of a training job's images, read a window at a time, so memory does not grow with the images.

- TIFFs that :mod:`~multirater.training.image_windows` reads window by window (uncompressed: memory-mapped;
  strips or tiles otherwise): nothing is kept. Each read opens the file, reads the window's pixels (the
  memory map's pages, or the strips/tiles the window touches) and closes it again, so no mapping outlives
  the read and the process's resident memory does not collect pages of every image it has cropped.
- Every other image (PNG, JPEG, TIFF layouts that must be decoded whole): decoded once, when the job is
  built, and kept in its own pixel type: 8 or 16-bit unsigned integers (float32 only when neither holds the
  decoded values exactly), grey as one channel. Built before the loader's worker processes start, these
  arrays are shared with them (fork copies the pages only when written, and they are only read).

Either way a window's float32 RGB pixels are exactly those ``load_image`` gives (same scaling, grey
repeated to RGB, alpha dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from multirater.data.dataset import Dataset, load_image
from multirater.training.image_windows import SCALES, TiffWindows, to_chw_float
from multirater.training.tiling import Window


def compact_pixels(pixels: np.ndarray) -> np.ndarray:
    """Decoded float32 RGB (H, W, 3) -> the smallest array that gives back exactly these values:
    one channel when grey; uint8 or uint16 when the values are k/255 or k/65535; else float32."""
    grey = np.array_equal(pixels[:, :, 0], pixels[:, :, 1]) and np.array_equal(pixels[:, :, 0], pixels[:, :, 2])
    kept = pixels[:, :, :1] if grey else pixels
    for dtype, scale in SCALES.items():
        raw = np.rint(kept.astype(np.float64) * scale).astype(dtype)
        if np.array_equal(raw.astype(np.float32) / scale, kept):
            return raw
    return np.ascontiguousarray(kept, dtype=np.float32)


def expand_pixels(raw: np.ndarray) -> torch.Tensor:
    """What :func:`compact_pixels` kept (a window of it) -> float32 RGB (3, H, W)."""
    if raw.dtype in SCALES:
        return to_chw_float(raw)
    out = torch.from_numpy(np.ascontiguousarray(raw.transpose(2, 0, 1)))
    return out.expand(3, -1, -1).contiguous() if out.shape[0] == 1 else out


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a TIFF that can be read window by window; None when it must be decoded whole."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        reader = TiffWindows.open(path)
    except Exception:  # load_image names the file's problem, with the project's error
        return None
    if reader is None:
        return None
    size = reader.width, reader.height
    reader.close()
    return size


class TrainingImages:
    """The pixels of ``image_ids`` of a dataset: whole, or a window of one (module docstring)."""

    def __init__(self, dataset: Dataset, image_ids: list[int]) -> None:
        self._paths: dict[int, Path] = {}
        self._sizes: dict[int, tuple[int, int]] = {}
        self._kept: dict[int, np.ndarray] = {}  # (H, W, 1 or 3) in the image's own pixel type
        for image_id in dict.fromkeys(image_ids):
            path = Path(dataset.images[image_id].path)
            self._paths[image_id] = path
            size = _tiff_size(path)
            if size is None:
                kept = compact_pixels(load_image(path))
                self._kept[image_id] = kept
                size = int(kept.shape[1]), int(kept.shape[0])
            self._sizes[image_id] = size

    @property
    def kept_bytes(self) -> int:
        """Bytes held by the images decoded whole (0 when every image is read window by window)."""
        return sum(a.nbytes for a in self._kept.values())

    def size(self, image_id: int) -> tuple[int, int]:
        """(width, height) of an image."""
        return self._sizes[image_id]

    def region(self, image_id: int, window: Window | None) -> torch.Tensor:
        """Float32 RGB (3, h, w) of ``window`` (x0, y0, x1, y1) of an image; the whole image when None."""
        width, height = self._sizes[image_id]
        x0, y0, x1, y1 = window if window is not None else (0, 0, width, height)
        kept = self._kept.get(image_id)
        if kept is not None:
            return expand_pixels(kept[y0:y1, x0:x1])
        reader = TiffWindows.open(self._paths[image_id])
        try:
            return reader.read((x0, y0, x1, y1))
        finally:
            reader.close()

    def __getitem__(self, image_id: int) -> torch.Tensor:
        return self.region(image_id, None)
