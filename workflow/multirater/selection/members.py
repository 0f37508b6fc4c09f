"""The members file: who is in one ensemble (LSE_S or RSE_S) and where their detections lie.

``multirater members`` writes it, ``multirater fuse --members`` reads it. One JSON object::

    {"format": "multirater-members", "kind": "lse"|"rse", "size": S,
     "members": [{"detections": PATH, "strategy": "ls"|"rs-<rater>", "config_id": ID,
                  "source": "ls"|<rater>}, ...]}

The ensemble's identity (kind, size and each member's strategy, config id and source) travels in
this file and from there into the fused detections' ``meta.identity``; nothing parses it from paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_format_json, write_json
from multirater.core.strategies import ENSEMBLE_KINDS
from multirater.selection.ranking import ensemble_members

FORMAT = "multirater-members"
KINDS = tuple(ENSEMBLE_KINDS)
MEMBER_KEYS = ("detections", "strategy", "config_id", "source")


def detections_path(predictions: str | Path, strategy: str, config_id: str) -> str:
    """Where a model's detections lie in a predictions folder: ``<predictions>/<strategy>/<config_id>.json``."""
    return str(Path(predictions) / strategy / f"{config_id}.json")


def build_members(rows: list[dict[str, Any]], kind: str, size: int, predictions: str | Path) -> dict[str, Any]:
    """The members document of LSE_size or RSE_size from selection rows; detections under ``predictions``."""
    members = [
        {"detections": detections_path(predictions, strategy, cid), "strategy": strategy, "config_id": cid,
         "source": source}
        for strategy, cid, source in ensemble_members(rows, kind, size)
    ]
    return {"format": FORMAT, "kind": kind, "size": size, "members": members}


def write_members(path: str | Path, document: dict[str, Any]) -> None:
    """Write a members document (atomically)."""
    write_json(path, document)


def read_members(path: str | Path) -> dict[str, Any]:
    """A members file, checked: kind, a size equal to the number of members, and every member's keys."""
    data = read_format_json(path, FORMAT, "members file")
    if data.get("kind") not in KINDS:
        raise UserError(f"must be one of {list(KINDS)}, got {data.get('kind')!r}", path, "kind")
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UserError(f"must be an integer >= 1, got {size!r}", path, "size")
    members = data.get("members")
    if not isinstance(members, list) or len(members) != size:
        count = len(members) if isinstance(members, list) else members
        raise UserError(f"must list {size} members (the size), got {count!r}", path, "members")
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise UserError("must be an object", path, f"members[{i}]")
        for key in MEMBER_KEYS:
            if not isinstance(member.get(key), str) or not member[key]:
                raise UserError(f"missing or not a string: {member.get(key)!r}", path, f"members[{i}].{key}")
    return data


def ensemble_identity(document: dict[str, Any]) -> dict[str, Any]:
    """The ``meta.identity`` of the fused detections: kind, size and each member's strategy, config id, source."""
    return {
        "kind": document["kind"],
        "size": document["size"],
        "members": [{k: m[k] for k in ("strategy", "config_id", "source")} for m in document["members"]],
    }


def check_member_detections(member: dict[str, Any], meta: dict[str, Any] | None, path: str | Path) -> None:
    """Detections that carry a model identity (``meta.identity``) must be that member's: a stale or
    misplaced file would otherwise be fused under another model's name."""
    own = (meta or {}).get("identity")
    if isinstance(own, dict) and "strategy" in own:
        if (own.get("strategy"), own.get("config_id")) != (member["strategy"], member["config_id"]):
            raise UserError(f"holds the detections of {own.get('strategy')}/{own.get('config_id')}, but the "
                            f"members file lists it for {member['strategy']}/{member['config_id']}",
                            path, "meta.identity")
