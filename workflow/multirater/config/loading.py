"""The workflow configuration: schema defaults, validation with one message naming the key, and the
cross-key rules JSON Schema cannot express (torch-free; the Snakefile calls this at parse time)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_yaml

# Sections whose defaults belong to multirater.training.settings: filling them here would override
# the pretrain job's own defaults and hide which keys the user set.
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


def _key_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate(config: dict[str, Any], schema_path: str | Path, file: str = "config") -> dict[str, Any]:
    """Defaults applied, then checked against the schema; raises one UserError naming the key."""
    import jsonschema

    schema = read_yaml(schema_path)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise UserError("must be a mapping", file)
    config = apply_defaults(schema, config)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            # name the offending key itself, not its parent
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            known = sorted(error.schema.get("properties", {}))
            raise UserError(f"unknown key; known keys here: {known}", file, _key_path(path + extra[:1]))
        raise UserError(error.message, file, _key_path(path))
    return config


def rater_names(config: dict[str, Any], file: str = "config") -> list[str]:
    """The raters of the configured dataset: synthetic rater1..raterN, or a manifest's ``raters`` keys."""
    manifest = config["dataset"].get("manifest")
    if manifest is None:
        return [f"rater{i + 1}" for i in range(config["dataset"]["synthetic"]["raters"])]
    data = read_yaml(manifest)
    raters = data.get("raters") if isinstance(data, dict) else None
    if not isinstance(raters, dict) or not raters:
        raise UserError("must map each rater name to its COCO file", manifest, "raters")
    return [str(r) for r in raters]


def check_design(config: dict[str, Any], raters: list[str], n_configs: int, file: str = "config") -> None:
    """The experiment's cross-key rules: every ensemble can be built from the selected models."""
    n_raters = len(raters)
    ls, rs = config["selection"]["ls"], config["selection"]["rs"]
    if ls > n_configs:
        raise UserError(f"selects {ls} label-sampling models but the sweep has only {n_configs} configurations",
                        file, "selection.ls")
    if rs > n_configs:
        raise UserError(f"selects {rs} models per rater but the sweep has only {n_configs} configurations",
                        file, "selection.rs")
    for i, size in enumerate(config["ensembles"]["sizes"]):
        item = f"ensembles.sizes[{i}]"
        if size % n_raters:
            raise UserError(f"{size} is not divisible by the number of raters ({n_raters}: {', '.join(raters)})",
                            file, item)
        if size > ls:
            raise UserError(f"{size} is larger than the {ls} label-sampling models selected (selection.ls)",
                            file, item)
        if size // n_raters > rs:
            raise UserError(f"{size} needs {size // n_raters} models per rater but only {rs} are selected "
                            "(selection.rs)", file, item)


def load_workflow_config(config: dict[str, Any], schema_path: str | Path,
                         file: str = "config") -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """What the Snakefile needs at parse time: the validated config (defaults filled), the rater
    names and the sweep's configurations; any problem is one UserError naming the key."""
    from multirater.training.sweep import expand_sweep

    checked = validate(config, schema_path, file)
    raters = rater_names(checked, file)
    configs = expand_sweep(checked, file)
    check_design(checked, raters, len(configs), file)
    return checked, raters, configs
