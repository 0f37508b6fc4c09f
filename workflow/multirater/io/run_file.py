"""``run.json`` of a workflow run (where it ran: :func:`multirater.core.provenance.run_record`). One writer
(``multirater run-record``) and one reader, torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_json, write_json
from multirater.core.provenance import RUN_FORMAT


def write_run(path: str | Path, record: dict[str, Any]) -> None:
    """Write ``run.json`` (a :func:`~multirater.core.provenance.run_record`)."""
    write_json(path, record)


def read_run(path: str | Path) -> dict[str, Any]:
    """A ``run.json``, checked for what the report and the studies read."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise UserError(f"not a run record (format must be {RUN_FORMAT!r})", path)
    for key, kind in (("workflow", dict), ("trainings", list), ("mixed", bool)):
        if not isinstance(data.get(key), kind):
            raise UserError(f"missing or not a {kind.__name__}", path, key)
    for i, group in enumerate(data["trainings"]):
        if not isinstance(group, dict) or not isinstance(group.get("jobs"), list) or "environment" not in group:
            raise UserError("must be {environment, hosts, jobs}", path, f"trainings[{i}]")
    return data
