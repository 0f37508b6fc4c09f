"""Model selection and ensemble membership (the paper's protocol).

Each strategy's models are ranked by validation mAP (rank 1 = best; ties go to the smaller config id
so the order is deterministic). Models whose training did not end ``ok`` get no rank and are never
selected. LSE_S takes the top S label-sampling models; RSE_S the top S/R rater-specific models of
each of the R raters.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import write_text
from multirater.core.strategies import LS, ensemble_kind, strategy_family, strategy_order, strategy_rater


COLUMNS = ["strategy", "config_id", "status", "val_map", "rank", "selected"]


def _val_map(status: dict[str, Any]) -> float | None:
    value = status.get("best_val_map")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def rank_models(statuses: list[dict[str, Any]], top_ls: int, top_rs: int) -> list[dict[str, Any]]:
    """Selection rows (see COLUMNS), ordered by strategy, then rank, then unranked by config id."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for s in statuses:
        key = (s["strategy"], s["config_id"])
        if key in seen:
            raise UserError(f"model {key[0]}/{key[1]} is listed twice", None, "status files")
        seen.add(key)
        by_strategy.setdefault(s["strategy"], []).append(s)
    rows: list[dict[str, Any]] = []
    for strategy in sorted(by_strategy, key=strategy_order):
        top = top_ls if strategy_family(strategy) == LS else top_rs
        models = by_strategy[strategy]
        usable = [m for m in models if m["status"] == "ok" and _val_map(m) is not None]
        usable.sort(key=lambda m: (-_val_map(m), m["config_id"]))
        for rank, m in enumerate(usable, start=1):
            rows.append({"strategy": strategy, "config_id": m["config_id"], "status": m["status"],
                         "val_map": _val_map(m), "rank": rank, "selected": rank <= top})
        ranked = {id(m) for m in usable}
        for m in sorted((m for m in models if id(m) not in ranked), key=lambda m: m["config_id"]):
            rows.append({"strategy": strategy, "config_id": m["config_id"], "status": m["status"],
                         "val_map": _val_map(m), "rank": None, "selected": False})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_selection(path: str | Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS])
    write_text(path, buffer.getvalue())


def read_selection(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a selection.csv with typed values (rank int or None, selected bool, val_map float or None)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in COLUMNS):
        raise UserError(f"header must hold {COLUMNS}, got {reader.fieldnames}", path)
    rows = []
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append({
                "strategy": raw["strategy"],
                "config_id": raw["config_id"],
                "status": raw["status"],
                "val_map": float(raw["val_map"]) if raw["val_map"] else None,
                "rank": int(raw["rank"]) if raw["rank"] else None,
                "selected": {"true": True, "false": False}[raw["selected"]],
            })
        except (ValueError, KeyError):
            raise UserError(f"malformed row {raw}", path, f"line {line}") from None
    return rows


def ensemble_members(rows: list[dict[str, Any]], kind: str, size: int) -> list[tuple[str, str, str]]:
    """``(strategy, config_id, source)`` of the members of LSE_size (``kind='lse'``) or RSE_size
    (``kind='rse'``); source is ``ls`` or the rater name. Raises if too few models were selected."""
    if size < 1:
        raise UserError(f"ensemble size must be >= 1, got {size}", None, "size")

    def top(strategy: str, n: int) -> list[dict[str, Any]]:
        chosen = sorted((r for r in rows if r["strategy"] == strategy and r["selected"]), key=lambda r: r["rank"])
        if len(chosen) < n:
            raise UserError(
                f"ensemble of size {size} needs {n} selected {strategy} models but only {len(chosen)} "
                "were selected (failed or diverged models are never selected; see selection.csv)",
                None, f"{kind} {size}")
        return chosen[:n]

    spec = ensemble_kind(kind)
    if not spec.per_rater:
        return [(spec.members, r["config_id"], spec.members) for r in top(spec.members, size)]
    strategies = sorted({r["strategy"] for r in rows if strategy_family(r["strategy"]) == spec.members})
    if not strategies:
        raise UserError("no rater-specific models in the selection", None, kind)
    if size % len(strategies):
        raise UserError(f"size {size} is not divisible by the number of raters ({len(strategies)})", None, "size")
    per_rater = spec.members_per_source(size, len(strategies))
    return [(s, r["config_id"], strategy_rater(s)) for s in strategies for r in top(s, per_rater)]
