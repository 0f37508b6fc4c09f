"""Extra keys of detections held as columns: the ``n_models``, ``score_std`` and ``votes`` fusion adds to every one
of 250,000 boxes. Made into one dict per detection only when asked (a detections file writes its records from the
columns directly), and otherwise read like the list of dicts it stands for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


class ExtraColumns(Sequence):
    """Per-detection extra keys: ``values`` maps a key to an (N,) array (one number per detection); ``counts``
    maps a key to an (N, K) integer array and its K names (one ``{name: count}`` dict per detection)."""

    def __init__(
        self,
        values: dict[str, np.ndarray],
        counts: dict[str, tuple[np.ndarray, list[str]]] | None = None,
    ):
        self.values = dict(values)
        self.counts = dict(counts or {})
        lengths = {len(v) for v in self.values.values()} | {len(m) for m, _ in self.counts.values()}
        if len(lengths) > 1:
            raise ValueError(f"extra columns of different lengths: {sorted(lengths)}")
        self._length = lengths.pop() if lengths else 0

    def keys(self) -> list[str]:
        """The extra keys, in the order each record lists them."""
        return [*self.values, *self.counts]

    def column_lists(self, window: slice = slice(None)) -> list[list[Any]]:
        """Each key's values for detections ``window``, as plain Python values (a list per key)."""
        columns = [np.asarray(v)[window].tolist() for v in self.values.values()]
        for matrix, names in self.counts.values():
            columns.append([dict(zip(names, row)) for row in np.asarray(matrix)[window].tolist()])
        return columns

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return ExtraColumns(
                {k: v[index] for k, v in self.values.items()},
                {k: (m[index], names) for k, (m, names) in self.counts.items()},
            )
        position = range(self._length)[index]
        record = {k: v[position].item() for k, v in self.values.items()}
        for key, (matrix, names) in self.counts.items():
            record[key] = dict(zip(names, matrix[position].tolist()))
        return record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        keys = self.keys()
        return (dict(zip(keys, row)) for row in zip(*self.column_lists()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"ExtraColumns({len(self)} detections: {', '.join(self.keys())})"
