"""``test_objects.csv``: the latent facts of every object on the synthetic test (consensus) images, so that
analyses can condition on them: what it is, where, its size and viability, whether the simulated detector
proposed it, and who labelled it (the consensus and each rater). Written with the dataset
(``generation.generate``), read with :func:`read_test_objects`; the format is in docs/file-contracts.md.

Objects are the organoids of an image (index 0..n-1) and, after them, the debris particles large enough to
be taken for an organoid (n, n+1, ...): a rater labels debris only by mistake.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.data.synthetic.raters import SceneLabels, side_at_reference

TEST_OBJECTS = "test_objects.csv"
CONSENSUS_COLUMN = "consensus"
BASE_COLUMNS = ["image_id", "object", "kind", "x", "y", "w", "h", "side_at_256", "viability", "proposed",
                CONSENSUS_COLUMN]


def rater_column(rater: str) -> str:
    """The 0/1 column saying whether ``rater`` labelled the object: ``by_<rater>``."""
    return f"by_{rater}"


def columns(raters: list[str]) -> list[str]:
    """Every column, in order: the base columns, one ``by_<rater>`` per rater, ``n_raters``."""
    return [*BASE_COLUMNS, *map(rater_column, raters), "n_raters"]


class TestObjects:
    """The rows of ``test_objects.csv``, image by image."""

    __test__ = False  # not a pytest test class

    def __init__(self, raters: list[str]) -> None:
        self.raters = list(raters)
        self.rows: list[dict[str, Any]] = []

    def add_image(self, image_id: int, size: int, scene: SceneLabels) -> None:
        """Every object of one test image; ``scene.labelled`` names the consensus and every rater."""
        by = {source: set(objects) for source, objects in scene.labelled.items()}
        for k, obj in enumerate(scene.objects):
            x0, y0, x1, y1 = (float(v) for v in obj.tight)
            raters = [int(k in by[r]) for r in self.raters]
            self.rows.append({
                "image_id": image_id, "object": k, "kind": "debris" if obj.viability is None else "organoid",
                "x": round(x0, 2), "y": round(y0, 2), "w": round(x1 - x0, 2), "h": round(y1 - y0, 2),
                "side_at_256": round(side_at_reference(obj.tight, size), 2),
                "viability": "" if obj.viability is None else round(float(obj.viability), 4),
                "proposed": int(k in scene.proposed), CONSENSUS_COLUMN: int(k in by[CONSENSUS_COLUMN]),
                **{rater_column(r): v for r, v in zip(self.raters, raters)}, "n_raters": sum(raters),
            })

    def csv_text(self) -> str:
        """The file's text."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns(self.raters), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()


def read_test_objects(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(raters, rows) of a ``test_objects.csv``: numbers as numbers, viability None for debris."""
    path = Path(path)
    if not path.is_file():
        raise UserError("not found (a synthetic dataset's test objects)", path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        raters = [c[len("by_"):] for c in header if c.startswith("by_")]
        if header != columns(raters):
            raise UserError(f"expected the columns {', '.join(columns(raters))}, got {', '.join(header)}", path)
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                parsed: dict[str, Any] = {key: int(row[key]) for key in
                                          ["image_id", "object", "proposed", CONSENSUS_COLUMN, "n_raters",
                                           *map(rater_column, raters)]}
                parsed.update({key: float(row[key]) for key in ("x", "y", "w", "h", "side_at_256")})
                parsed["viability"] = float(row["viability"]) if row["viability"] else None
            except (TypeError, ValueError) as exc:
                raise UserError(f"not a number: {exc}", path, f"line {line}") from None
            parsed["kind"] = row["kind"]
            rows.append(parsed)
    return raters, rows
