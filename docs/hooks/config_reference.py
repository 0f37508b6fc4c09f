"""The configuration reference page, written from workflow/multirater/config/schema.yaml, the one
definition of every setting: key, default, allowed values and meaning cannot drift from what the
workflow checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cli_reference import escape


@dataclass(frozen=True)
class Setting:
    key: str  # dotted path, e.g. dataset.synthetic.seed
    default: str  # as YAML writes it, "" when the schema gives none
    allowed: str
    meaning: str


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A node with its $ref replaced by the definition (the node's own keys, e.g. description, win)."""
    if "$ref" not in node:
        return node
    target: Any = schema
    for part in node["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**resolve(schema, target), **{k: v for k, v in node.items() if k != "$ref"}}


def as_yaml(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) and not value else yaml.safe_dump(
        value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def interval(node: dict[str, Any]) -> str:
    low = ("> " + str(node["exclusiveMinimum"]) if "exclusiveMinimum" in node
           else ">= " + str(node["minimum"]) if "minimum" in node else "")
    high = ("< " + str(node["exclusiveMaximum"]) if "exclusiveMaximum" in node
            else "<= " + str(node["maximum"]) if "maximum" in node else "")
    return ", ".join(part for part in (low, high) if part)


def allowed(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """What a value may be, in words: an enum's values, a type with its bounds, a list of what."""
    node = resolve(schema, node)
    if "enum" in node:
        return ", ".join(as_yaml(v) for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(allowed(schema, option) for option in node["oneOf"])
    types = node.get("type", "object")
    types = [types] if isinstance(types, str) else list(types)
    words = []
    for kind in types:
        if kind == "null":
            continue
        if kind == "array":
            items = allowed(schema, node.get("items", {}))
            words.append(f"list of ({items})" if " or " in items else f"list of {items}" if items else "list")
        elif kind in ("integer", "number"):
            bounds = interval(node)
            words.append(f"{kind} {bounds}".strip())
        elif kind == "string" and "pattern" in node:
            words.append(f"text matching {node['pattern']}")
        elif kind == "string":
            words.append("text")
        elif kind == "boolean":
            words.append("true, false")
        elif kind == "object":
            words.append("mapping")
    if "null" in types:
        words.append("null")
    return " or ".join(words)


def settings(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[Setting]:
    """Every setting below a node, depth first, in the schema's order (an object's own row first when it
    is a value of its own, e.g. sweep.grid, and not just a section)."""
    node = resolve(schema, node)
    out = []
    properties = node.get("properties")
    items = node.get("items") if isinstance(node.get("items"), dict) else None
    if not properties or "default" in node and node["default"] not in ({}, None) or items:
        default = as_yaml(node["default"]) if "default" in node else ""
        out.append(Setting(prefix, default, allowed(schema, node), node.get("description", "").strip()))
    if items and resolve(schema, items).get("properties"):
        out += settings(schema, items, prefix + "[]")
    for key, sub in (properties or {}).items():
        out += settings(schema, sub, f"{prefix}.{key}")
    return out


def sections(schema: dict[str, Any]) -> list[tuple[str, str, list[Setting], str]]:
    """(section, its description, its settings, the section whose keys it shares) for each top-level key.
    A definition used by several sections (training: training and pretrain) is written out once, under
    the section named after it."""
    out = []
    for name, node in schema["properties"].items():
        ref = node.get("$ref", "").split("/")[-1]
        shared = ref if ref and ref != name and ref in schema["properties"] else ""
        described = resolve(schema, node)
        rows = [] if shared else [s for s in settings(schema, node, name) if s.key != name]
        out.append((name, described.get("description", "").strip(), rows, shared))
    return out


def undescribed(schema: dict[str, Any]) -> list[str]:
    """The sections and settings that have no description: the page would leave them unexplained."""
    missing = []
    for name, description, rows, _shared in sections(schema):
        missing += [name] if not description else []
        missing += [row.key for row in rows if not row.meaning]
    return missing


def page(schema_path: Path) -> str:
    schema = yaml.safe_load(schema_path.read_text())
    lines = []
    for name, description, rows, shared in sections(schema):
        lines += [f"## {name}", "", escape(description), ""]
        if shared:
            lines += [f"The keys of [`{shared}`](#{shared}), with the values described there.", ""]
            continue
        lines += ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        for row in rows:
            default = f"`{row.default}`" if row.default else ""
            lines.append(f"| `{row.key}` | {default} | "
                         f"{escape(row.allowed)} | {escape(row.meaning)} |")
        lines.append("")
    return "\n".join(lines)
