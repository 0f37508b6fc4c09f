"""The workflow schema (``schema.yaml``, the one definition of every setting): reading it and its defaults,
checking a config against it with one message naming the key, and the model rules JSON Schema cannot express.
The cross-key rules that need the dataset and the sweep are the workflow's (``multirater.workflow_config``)."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

from multirater.config import SCHEMA_PATH
from multirater.core.errors import UserError
from multirater.core.files import read_yaml


@functools.cache
def read_schema() -> dict[str, Any]:
    """The workflow schema (``SCHEMA_PATH``), read once."""
    return read_yaml(SCHEMA_PATH)


def schema_definition(name: str) -> dict[str, Any]:
    """The schema's ``definitions.<name>`` (model, training, training_job, ...)."""
    return read_schema()["definitions"][name]


# Keys of the workflow's training section that are not a job's setting: never in a job's configuration file
# (adding one would change every file, and retrain every model), never varied by a sweep.
WORKFLOW_ONLY = {"training": ("replicates",)}


def job_properties(section: str) -> dict[str, Any]:
    """The schema's properties of ``section`` (``model`` or ``training``) that are a job's settings."""
    skip = WORKFLOW_ONLY.get(section, ())
    return {k: v for k, v in schema_definition(section)["properties"].items() if k not in skip}


def defaults(section: str) -> dict[str, Any]:
    """Every job key of ``section`` (``model`` or ``training``) with its schema default."""
    return {k: copy.deepcopy(v["default"]) for k, v in job_properties(section).items()}


def check_model_rules(model: dict[str, Any] | None, file: Any = None, where: str = "model") -> None:
    """The model rules JSON Schema cannot express (defaults included): ``max_size`` >= ``min_size``,
    and ``tile_overlap`` < ``tile_size`` when tiling is on (windows must advance)."""
    sizes = {**defaults("model"), **(model or {})}
    if sizes["max_size"] < sizes["min_size"]:
        raise UserError(f"must be >= min_size ({sizes['min_size']}), got {sizes['max_size']}", file,
                        f"{where}.max_size")
    if sizes["tile_size"] is not None and sizes["tile_overlap"] >= sizes["tile_size"]:
        raise UserError(f"must be < tile_size ({sizes['tile_size']}), got {sizes['tile_overlap']}", file,
                        f"{where}.tile_overlap")


# Sections completed per job by multirater.training.settings (from the defaults in the schema):
# filling them here would override the values pretrain inherits from training.
_NO_FILL = {"model", "training", "pretrain"}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    # siblings of $ref (default, description) refine the referenced schema
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def apply_defaults(schema: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every missing key that has a schema ``default`` filled in, recursively."""

    def fill(node: dict[str, Any], value: Any) -> Any:
        node = _resolve(schema, node)
        if not isinstance(value, dict):
            return value
        for key, sub in (node.get("properties") or {}).items():
            if key in _NO_FILL and node is schema:
                continue
            sub = _resolve(schema, sub)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = fill(sub, value[key])
        return value

    return fill(schema, copy.deepcopy(config or {}))


_SCALARS = ("integer", "number", "boolean", "null")


def _read_scalar(text: str, allowed: set[str]) -> Any:
    """``text`` as the first of the allowed integer, number, boolean or null it reads as; else ``text``."""
    import yaml

    word = text.strip()
    if "integer" in allowed and re.fullmatch(r"[+-]?\d+", word):
        return int(word)
    if "number" in allowed:
        try:
            return int(word) if re.fullmatch(r"[+-]?\d+", word) else float(word)
        except ValueError:
            pass
    if "boolean" in allowed or "null" in allowed:
        try:
            read = yaml.safe_load(word)
        except yaml.YAMLError:
            return text
        if (read is None and "null" in allowed) or (isinstance(read, bool) and "boolean" in allowed):
            return read
    return text


def _allowed_types(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    """The JSON types a schema node allows (through $ref, oneOf and anyOf); empty when it does not say."""
    node = _resolve(schema, node)
    types = node.get("type", [])
    allowed = {types} if isinstance(types, str) else set(types)
    for key in ("oneOf", "anyOf"):
        for sub in node.get(key, []):
            allowed |= _allowed_types(schema, sub)
    return allowed


def typed_strings(schema: dict[str, Any], config: Any) -> Any:
    """A copy of ``config`` where a string stands for a number, boolean or null that the schema asks for
    (``--config 'resources={train_threads: 2}'``: Snakemake reads nested values as strings) is read as
    such; a string where the schema allows one, or one that reads as no such value, is kept."""

    def convert(node: dict[str, Any], value: Any) -> Any:
        node = _resolve(schema, node)
        if isinstance(value, dict):
            properties = node.get("properties") or {}
            return {k: convert(properties[k], v) if k in properties else v for k, v in value.items()}
        if isinstance(value, list):
            items = node.get("items")
            return [convert(items, v) for v in value] if isinstance(items, dict) else value
        if not isinstance(value, str):
            return value
        if "enum" in node:  # e.g. freeze: none, backbone, ..., true, false
            read = value if value in node["enum"] else _read_scalar(value, set(_SCALARS))
            return read if not isinstance(read, str) and read in node["enum"] else value
        allowed = _allowed_types(schema, node)
        if "null" in allowed and value.strip() in ("null", "Null", "NULL", "~"):
            return None  # YAML's null, which Snakemake's --config reading leaves a string
        return value if "string" in allowed else _read_scalar(value, allowed)

    return convert(schema, config)


def _key_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def schema_problem(error: Any, file: str = "config") -> UserError:
    """One line naming the key for a JSON-schema ``ValidationError`` (instead of the schema dump)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        # name the offending key itself, not its parent
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = sorted(error.schema.get("properties", {}))
        return UserError(f"unknown key; known keys here: {known}", file, _key_path(path + extra[:1]))
    return UserError(error.message, file, _key_path(path))


def validate(config: dict[str, Any], schema_path: str | Path, file: str = "config") -> dict[str, Any]:
    """Defaults applied, then checked against the schema by Snakemake's own ``validate(config, schema)``;
    raises one UserError naming the key.

    Snakemake's validator fills defaults too, but it would fill the model/training/pretrain sections,
    whose defaults belong to the training settings (pretrain inherits training's values), so the
    defaults come from ``apply_defaults`` and Snakemake only checks.
    """
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    schema = read_yaml(schema_path)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise UserError("must be a mapping", file)
    config = apply_defaults(schema, typed_strings(schema, config))
    try:
        snakemake_validate(config, str(schema_path), set_default=False)
    except WorkflowError as error:
        cause = error.__context__  # Snakemake wraps the jsonschema error it raised
        if isinstance(cause, jsonschema.exceptions.ValidationError):
            raise schema_problem(cause, file) from None
        raise
    check_model_rules(config.get("model"), file)
    return config
