"""The records of a detections file as JSON text, built from numpy columns: every record is the same constant
texts around numbers, so each column is encoded at once by orjson and its numbers slotted between the texts
(runs of integer fields with few distinct values, e.g. ids and vote counts, from a table of their distinct rows).
The result is byte for byte what orjson gives for the records one by one; ``io.detections`` falls back to that
when the extra keys do not fit this layout (bools, float32, NaN, nested values).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from multirater.io.extra_columns import ExtraColumns


def _text_column(values: Any, n: int) -> np.ndarray | None:
    """``values`` as a 1-d int64 or float64 array (finite) whose numbers orjson writes as it writes their Python
    values (``tolist``), or None when it might not (bools, float32, NaN, other shapes)."""
    column = np.asarray(values)
    if column.shape != (n,) or not (column.dtype.kind == "i" or column.dtype == np.float64):
        return None
    if column.dtype.kind == "f" and not np.isfinite(column).all():
        return None
    return np.ascontiguousarray(column, dtype=np.int64 if column.dtype.kind == "i" else np.float64)


Layout = tuple[list[bytes], list[np.ndarray], bytes]


def record_layout(image_id: np.ndarray, category_id: np.ndarray, boxes: np.ndarray, scores: np.ndarray, extra: Any,
                  reserved: frozenset[str]) -> Layout | None:
    """Every record (a detections file's columns: ``io.detections.Detections``) as the same texts around numbers:
    (text before each number, the numbers' columns, the text after the last); None when the extra keys do not
    allow it (then records are built one by one)."""
    n = int(scores.shape[0])
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    columns = [np.ascontiguousarray(c, dtype=t) for c, t in ((image_id, np.int64),
               (category_id, np.int64), (boxes, np.float64), (scores, np.float64))]
    if any(len(c) != n for c in columns) or columns[0].ndim != 1 or columns[1].ndim != 1 or columns[3].ndim != 1:
        return None
    before = [b'{"image_id":', b',"category_id":', b',"bbox":[', b'],"score":']
    if extra is None:
        return before, columns, b"}"
    if not isinstance(extra, ExtraColumns):
        return None
    keys = extra.keys()
    if len(set(keys)) != len(keys) or set(keys) & reserved or any(type(k) is not str for k in keys):
        return None
    for key, values in extra.values.items():
        columns.append(_text_column(values, n))
        before.append(b"," + orjson.dumps(key) + b":")
    pending = b""  # constant text not yet placed before a number
    for key, (matrix, names) in extra.counts.items():
        matrix = np.asarray(matrix)
        if matrix.shape != (n, len(names)) or len(set(names)) != len(names) or any(type(s) is not str for s in names):
            return None
        opening = pending + b"," + orjson.dumps(key) + b":{"
        pending = opening + b"}" if not names else b"}"
        for k, name in enumerate(names):
            columns.append(_text_column(matrix[:, k], n))
            before.append((opening if k == 0 else b",") + orjson.dumps(name) + b":")
    return None if any(c is None for c in columns) else (before, columns, pending + b"}")


def _int_run_table(labels: list[bytes], columns: list[np.ndarray]) -> tuple[list[bytes], np.ndarray] | None:
    """Consecutive integer fields with their labels: (the text of each distinct row, each record's row), or None
    when they take too many distinct values for a table to pay."""
    n, key, span, radix = len(columns[0]), 0, 1, []
    for column in columns:  # each row's number in mixed radix: small enough to count, not sort
        low = int(column.min())
        size = int(column.max()) - low + 1
        span *= size
        if span > 4 * n:
            return None
        key = key * size + (column - low)
        radix.append((low, size))
    present = np.bincount(key, minlength=span) > 0
    rows, values = np.flatnonzero(present), []
    for low, size in reversed(radix):
        values.append((rows % size + low).tolist())
        rows = rows // size
    table = [b"".join(t + b"%d" % v for t, v in zip(labels, row)) for row in zip(*reversed(values))]
    return table, (np.cumsum(present) - 1)[key]


def records_text(layout: Layout, start: int, stop: int) -> bytes:
    """Records ``start:stop`` as a JSON list's items (what ``_encode(records)[1:-1]`` gives).

    Each record is a few slots: constant text, a float column's number (all encoded at once by orjson), or the
    text of a run of integer fields with their labels (ids, counts: few distinct rows, made once each); the
    slots of all records are then joined at once.
    """
    before, columns, after = layout
    n = stop - start
    slots: list[Any] = []  # bytes (constant), list of texts, or (table, row of each record)
    k = 0
    while k < len(columns):
        end = k
        while end < len(columns) and columns[end].dtype.kind == "i":
            end += 1
        run = _int_run_table(before[k:end], [c[start:stop] for c in columns[k:end]]) if end > k else None
        if run is None:
            end = k + 1
            numbers = orjson.dumps(columns[k][start:stop], option=orjson.OPT_SERIALIZE_NUMPY)
            # one column of numbers, or of rows of numbers (the boxes: each row's numbers are written together)
            texts = numbers[2:-2].split(b"],[") if columns[k].ndim == 2 else numbers[1:-1].split(b",")
            slots += [before[k], texts]
        else:
            slots.append(run)
        k = end
    slots.append(after + b",")  # every record ends with a comma: the last one is cut off
    merged: list[Any] = slots[:1]  # constants joined to the constant or table before them
    for slot in slots[1:]:
        last = merged[-1]
        if isinstance(slot, bytes) and not isinstance(last, list):
            merged[-1] = last + slot if isinstance(last, bytes) else ([text + slot for text in last[0]], last[1])
        else:
            merged.append(slot)
    width = len(merged)
    pieces: list[bytes] = [b""] * (width * n)
    for k, slot in enumerate(merged):
        if isinstance(slot, tuple):
            slot = list(map(slot[0].__getitem__, slot[1].tolist()))
        pieces[k::width] = [slot] * n if isinstance(slot, bytes) else slot
    return b"".join(pieces)[:-1]
