"""Is an image file whole? Found from its structure, without decoding its pixels, so `multirater check` can
refuse a cut-short file in seconds instead of a training job failing on it hours later.

- TIFF: every page's strips or tiles (their offsets plus byte counts, from the header) must end inside the file.
- PNG: the chunks must follow one another to the IEND chunk, each inside the file, with image data (IDAT)
  before it. Chunk checksums are not verified: that would read every byte.
- JPEG: the segments up to the first scan (SOS) must lie inside the file, and an end-of-image marker (EOI) must
  follow the scan: inside compressed data a 0xFF byte is always followed by 0x00, so 0xFFD9 marks the end.

A header that cannot be read at all is reported by the caller (``images.image_size`` fails first).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
JPEG_SOS = 0xDA
# JPEG markers without a length field: TEM, RST0-7
_JPEG_BARE_MARKERS = {0x01, *range(0xD0, 0xD8)}


def pixel_data_problem(path: Path) -> str | None:
    """What is wrong with the pixel data of an image file (PNG, TIFF, JPEG), or None if it is whole."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if suffix in (".tif", ".tiff"):
        return _tiff_problem(path, size)
    with open(path, "rb") as fh:
        if suffix == ".png":
            return _png_problem(fh, size)
        if suffix in (".jpg", ".jpeg"):
            return _jpeg_problem(fh, size)
    return None


class _Errors(logging.Handler):
    """Collects the errors tifffile logs instead of raising (a page or a tag it cannot read is skipped)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _tiff_problem(path: Path, size: int) -> str | None:
    import tifffile

    errors = _Errors()
    log = logging.getLogger("tifffile")
    log.addHandler(errors)
    try:
        with tifffile.TiffFile(path) as tif:
            for number, page in enumerate(tif.pages):
                offsets, counts = page.dataoffsets, page.databytecounts
                for index, (offset, count) in enumerate(zip(offsets, counts)):
                    if count and offset + count > size:
                        kind = "tile" if page.is_tiled else "strip"
                        where = f"page {number + 1}, " if len(tif.pages) > 1 else ""
                        return (f"pixel data cut short: {where}{kind} {index + 1} of {len(offsets)} ends at byte "
                                f"{offset + count} but the file has {size} bytes (an incomplete copy or download?)")
    except tifffile.TiffFileError as exc:  # after what tifffile logged, if anything: that names the first fault
        errors.messages.append(str(exc))
    finally:
        log.removeHandler(errors)
    if errors.messages:  # e.g. a page whose header lies beyond the end of the file: tifffile drops it
        return (f"cut short or broken: {errors.messages[0]} (the file has {size} bytes; an incomplete copy or "
                "download?)")
    return None


def _png_problem(fh, size: int) -> str | None:  # noqa: ANN001 - a binary file
    if fh.read(8) != PNG_SIGNATURE:
        return "not a PNG file (wrong signature)"
    position, number, seen_data = 8, 0, False
    while True:
        header = fh.read(8)
        if len(header) < 8:
            return (f"pixel data cut short: the file ends at byte {size} after {number} chunks, before the "
                    "IEND chunk (an incomplete copy or download?)")
        length, kind = struct.unpack(">I4s", header)
        end = position + 12 + length  # length, type, data, checksum
        if end > size:
            name = kind.decode("latin-1")
            return (f"pixel data cut short: chunk {number} ({name}) ends at byte {end} but the file has {size} "
                    "bytes (an incomplete copy or download?)")
        if kind == b"IEND":
            return None if seen_data else "holds no image data (no IDAT chunk)"
        seen_data = seen_data or kind == b"IDAT"
        fh.seek(end)
        position, number = end, number + 1


def _jpeg_problem(fh, size: int) -> str | None:  # noqa: ANN001 - a binary file
    if fh.read(2) != JPEG_SOI:
        return "not a JPEG file (no start-of-image marker)"
    position = 2
    while True:
        marker = fh.read(2)
        if len(marker) < 2:
            return f"pixel data cut short: the file ends at byte {size} before the image data (no scan)"
        if marker[0] != 0xFF:
            return f"malformed: expected a marker at byte {position}, found 0x{marker.hex()}"
        code = marker[1]
        if code == 0xFF:  # fill byte before a marker
            fh.seek(position + 1)
            position += 1
            continue
        if code in _JPEG_BARE_MARKERS:
            position += 2
            continue
        length_bytes = fh.read(2)
        if len(length_bytes) < 2:
            return f"pixel data cut short: the file ends at byte {size} inside a segment header"
        end = position + 2 + struct.unpack(">H", length_bytes)[0]
        if end > size:
            return f"pixel data cut short: a segment ends at byte {end} but the file has {size} bytes"
        fh.seek(end)
        position = end
        if code == JPEG_SOS:
            break
    rest = fh.read()
    if JPEG_EOI not in rest:
        return (f"pixel data cut short: no end-of-image marker after the image data (the file has {size} bytes; "
                "an incomplete copy or download?)")
    return None
