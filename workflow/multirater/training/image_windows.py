"""One window of an image file at a time, so that tiled prediction's memory is bounded by the window.

- Uncompressed TIFF: memory-mapped; a window reads only its own pixels.
- Other TIFFs stored in strips or tiles (compressed or not; grey, or RGB interleaved): only the
  strips or tiles a window touches are read and decoded (a strip spans the image's width); those of
  the previous window are kept, as the next window in the row needs them again.
- Everything else (PNG, JPEG, multi-page or planar TIFFs, pixel types other than 8 or 16-bit
  unsigned) is decoded whole by ``load_image``, once per image: memory is then the whole image as
  float32 RGB (12 bytes per pixel; 440 MB for a 6384 x 5720 image).

Pixels are scaled by their type's range (8-bit / 255, 16-bit / 65535), grey is repeated to RGB and
alpha dropped: exactly the values ``load_image`` gives for the same pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multirater.core.errors import UserError
from multirater.data.dataset import load_image

if TYPE_CHECKING:  # torch only where a tensor is asked for: the review's contact sheet reads arrays
    import torch

    from multirater.training.tiling import Window

SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def chw_float(raw: np.ndarray) -> np.ndarray:
    """Raw 8/16-bit pixels (H, W) or (H, W, C) -> float32 RGB (3, H, W) in [0, 1], as load_image scales them."""
    if raw.ndim == 3:
        raw = raw[:, :, 0] if raw.shape[2] == 1 else raw[:, :, :3]
    out = raw.astype(np.float32) / SCALES[raw.dtype]
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def to_chw_float(raw: np.ndarray) -> torch.Tensor:
    """:func:`chw_float` as a tensor (sharing its memory)."""
    import torch

    return torch.from_numpy(chw_float(raw))


class ArrayWindows:
    """What both readers share: a window as a tensor, from their ``read_array``."""

    def read_array(self, window: Window) -> np.ndarray:
        """The window's pixels, float32 (3, h, w)."""
        raise NotImplementedError

    def read(self, window: Window) -> torch.Tensor:
        """:meth:`read_array` as a tensor."""
        import torch

        return torch.from_numpy(self.read_array(window))


class WholeImage(ArrayWindows):
    """An image decoded whole by ``load_image``; windows are views of it."""

    def __init__(self, path: Path) -> None:
        self.pixels = load_image(path)
        self.height, self.width = self.pixels.shape[:2]

    def read_array(self, window: Window) -> np.ndarray:
        """The window's pixels, float32 (3, h, w)."""
        x0, y0, x1, y1 = window
        return np.ascontiguousarray(self.pixels[y0:y1, x0:x1].transpose(2, 0, 1))

    def close(self) -> None:
        """Nothing to release."""


class TiffWindows(ArrayWindows):
    """A single-image TIFF read window by window (memory map, or the strips/tiles a window touches)."""

    def __init__(self, tif: Any, page: Any) -> None:
        self.tif, self.page = tif, page
        self.height, self.width = int(page.shape[0]), int(page.shape[1])
        self.memmap = page.asarray(out="memmap") if page.is_memmappable else None
        self.chunk_h, self.chunk_w = int(page.chunks[0]), int(page.chunks[1])
        self.chunks_per_row = int(page.chunked[1])
        self.kept: dict[int, np.ndarray] = {}  # the decoded segments of the previous window

    @classmethod
    def open(cls, path: Path) -> TiffWindows | None:
        """The reader of ``path``, or None when its layout needs the whole image decoded."""
        import tifffile

        tif = tifffile.TiffFile(path)
        page = tif.pages[0]
        shape = tuple(page.shape)
        readable = (
            len(tif.series) == 1 and tuple(tif.series[0].shape) == shape and page.dtype in SCALES
            and tuple(page.shaped[:2]) == (1, 1)
            and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4)))
        )
        if not readable:
            tif.close()
            return None
        return cls(tif, page)

    def _segment(self, index: int) -> np.ndarray:
        segment = self.kept.get(index)
        if segment is None:
            handle = self.tif.filehandle
            handle.seek(self.page.dataoffsets[index])
            data = handle.read(self.page.databytecounts[index])
            decoded, _, _ = self.page.decode(data, index, jpegtables=getattr(self.page, "jpegtables", None))
            segment = decoded[0]  # (h, w, samples)
        return segment

    def _raw(self, window: Window) -> np.ndarray:
        x0, y0, x1, y1 = window
        if self.memmap is not None:
            return np.asarray(self.memmap[y0:y1, x0:x1])
        out = np.empty((y1 - y0, x1 - x0, *self.page.shape[2:]), dtype=self.page.dtype)
        used: dict[int, np.ndarray] = {}
        for row in range(y0 // self.chunk_h, (y1 - 1) // self.chunk_h + 1):
            for col in range(x0 // self.chunk_w, (x1 - 1) // self.chunk_w + 1):
                index = row * self.chunks_per_row + col
                used[index] = segment = self._segment(index)
                sy, sx = row * self.chunk_h, col * self.chunk_w  # the segment's top-left pixel
                top, left = max(y0, sy), max(x0, sx)
                bottom, right = min(y1, sy + segment.shape[0]), min(x1, sx + segment.shape[1])
                dest = out[top - y0:bottom - y0, left - x0:right - x0]
                dest[...] = segment[top - sy:bottom - sy, left - sx:right - sx].reshape(dest.shape)
        self.kept = used
        return out

    def read_array(self, window: Window) -> np.ndarray:
        """The window's pixels, float32 (3, h, w)."""
        return chw_float(self._raw(window))

    def close(self) -> None:
        """Close the file."""
        self.kept = {}
        self.memmap = None
        self.tif.close()


def open_windows(path: str | Path) -> TiffWindows | WholeImage:
    """A window reader of an image file (the cheapest the file's format allows); close() it after use."""
    path = Path(path)
    if not path.exists():
        raise UserError("image file not found", path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            reader = TiffWindows.open(path)
        except Exception as exc:  # any decoder failure is the file's problem
            raise UserError(f"cannot read image ({exc})", path) from None
        if reader is not None:
            return reader
    return WholeImage(path)
