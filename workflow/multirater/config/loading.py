"""The workflow configuration: schema defaults, validation with one message naming the key, and the
cross-key rules JSON Schema cannot express (torch-free; the Snakefile calls this at parse time)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_yaml

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

    from multirater.training.settings import check_model_rules  # what the schema cannot say

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


def rater_names(config: dict[str, Any], file: str = "config") -> list[str]:
    """The raters of the configured dataset: synthetic rater1..raterN, or a manifest's ``raters`` keys."""
    from multirater.data.manifest import read_manifest

    manifest = config["dataset"].get("manifest")
    if manifest is None:
        return [f"rater{i + 1}" for i in range(config["dataset"]["synthetic"]["raters"])]
    return list(read_manifest(manifest).rater_files)


def label_set_names(config: dict[str, Any]) -> list[str]:
    """The test label sets of the configured dataset: the synthetic ``consensus``, or a manifest's
    (``consensus`` first, then ``test_label_sets``), then ``majority`` when the workflow derives it (no
    consensus: ``multirater.data.consensus.majority_voters``)."""
    from multirater.data.consensus import MAJORITY, majority_voters
    from multirater.data.manifest import CONSENSUS, read_manifest

    manifest = config["dataset"].get("manifest")
    if manifest is None:
        return [CONSENSUS]
    names = list(read_manifest(manifest).label_set_files)
    return names + [MAJORITY] if majority_voters(names) else names


def headline_label_set(config: dict[str, Any], file: str = "config") -> str:
    """The test label set of the headline metrics, tables and figures: ``evaluation.label_set``, checked
    against the dataset's label sets, or by default ``consensus`` when there is one, else the majority (the
    import's, or the workflow's of every label set), else the one label set."""
    from multirater.data.consensus import MAJORITY
    from multirater.data.manifest import CONSENSUS

    label_sets = label_set_names(config)
    where = config["dataset"].get("manifest") or "the synthetic dataset"
    if not label_sets:
        raise UserError("has no test label set (consensus or test_label_sets): the test images need labels; "
                        "multirater import takes them with --consensus-labels (a consensus) or --test-labels "
                        "(each rater's own, whose majority the workflow then evaluates against)",
                        where, "test_label_sets")
    chosen = config["evaluation"].get("label_set")
    if chosen is None:
        for default in (CONSENSUS, MAJORITY):
            if default in label_sets:
                return default
        return label_sets[0]
    if chosen not in label_sets:
        raise UserError(f"{chosen!r} is not a test label set of {where} ({', '.join(label_sets)})", file,
                        "evaluation.label_set")
    return chosen


def check_dataset(config: dict[str, Any], raters: list[str], file: str = "config") -> None:
    """The dataset's cross-key rules: the synthetic raters' styles and second passes, and where the base
    model comes from (never from the experiment's own labels)."""
    from multirater.data.synthetic.presets import check_overrides

    dataset = config["dataset"]
    synthetic = dataset["synthetic"]
    if dataset["manifest"] is None:
        try:
            check_overrides(synthetic["rater_styles"], len(raters))
        except UserError as error:
            raise UserError(error.problem, file, f"dataset.synthetic.{error.item}") from None
        if synthetic["repeat_images"] > synthetic["images"]:
            raise UserError(f"{synthetic['repeat_images']} is more than the {synthetic['images']} multi-rater "
                            "images (dataset.synthetic.images)", file, "dataset.synthetic.repeat_images")
    base_checkpoint = (config.get("model") or {}).get("base_checkpoint")
    base_manifest = dataset["base_manifest"]
    if base_checkpoint is not None and base_manifest is not None:
        raise UserError("the base model comes from model.base_checkpoint or is trained on this dataset: give "
                        "one of the two", file, "dataset.base_manifest")
    if base_manifest is not None and dataset["manifest"] is not None and \
            Path(base_manifest).resolve() == Path(dataset["manifest"]).resolve():
        raise UserError("is the experiment's own dataset; the base model must be trained on other images and "
                        "labels", file, "dataset.base_manifest")
    if base_checkpoint is None and base_manifest is None and dataset["manifest"] is not None:
        raise UserError("is null with your own dataset (dataset.manifest), and the base model must never learn the "
                        "experiment's labels: set model.base_checkpoint to a weights file (e.g. GOAT's), or "
                        "dataset.base_manifest to a separate dataset.yaml for the pretrain job", file,
                        "model.base_checkpoint")


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


def apply_ensemble(config: dict[str, Any], raters: list[str], file: str = "config") -> tuple[str, int]:
    """(kind, size) of the ensemble the ``apply`` section asks for, checked against the selection;
    the size defaults to the largest of ``ensembles.sizes``. Checked only when the apply target is built."""
    apply = config["apply"]
    if apply["images"] is None:
        raise UserError("not set; name the folder of new images in a config file "
                        "(apply: {images: DIR, kind: rse, size: 4})", file, "apply.images")
    if not Path(apply["images"]).is_dir():
        raise UserError(f"{apply['images']}: no such folder", file, "apply.images")
    kind = apply["kind"]
    size = max(config["ensembles"]["sizes"]) if apply["size"] is None else apply["size"]
    if kind == "rse" and size % len(raters):
        raise UserError(f"{size} is not divisible by the number of raters ({len(raters)}: {', '.join(raters)})",
                        file, "apply.size")
    key = "ls" if kind == "lse" else "rs"
    selected = config["selection"][key]
    per_source = size if kind == "lse" else size // len(raters)
    if per_source > selected:
        raise UserError(f"{kind.upper()}_{size} needs {per_source} selected models per source but only {selected} "
                        f"are selected (selection.{key})", file, "apply.size")
    return kind, size


def check_workflow_config(config: dict[str, Any], file: str = "config") -> tuple[list[str], list[dict[str, Any]]]:
    """The cross-key rules of a schema-valid config, in one place: the rater names (from the dataset),
    the dataset's rules (``check_dataset``), the sweep's configurations, and that every ensemble can be
    built from the selected models."""
    from multirater.training.sweep import expand_sweep

    raters = rater_names(config, file)
    check_dataset(config, raters, file)
    configs = expand_sweep(config, file)
    check_design(config, raters, len(configs), file)
    return raters, configs


# The settings that name a file or folder the workflow reads, with what it is (for the message).
SETTING_FILES = {
    "dataset.manifest": ("file", "your dataset.yaml: multirater import writes one, docs/file-contracts.md "
                                 "describes it"),
    "dataset.base_manifest": ("file", "the separate dataset.yaml the pretrain job trains the base model on"),
    "model.base_checkpoint": ("file", "the weights every model is fine-tuned from, e.g. the GOAT weights "
                                      "(Bremer et al. 2022; config/multiorg.yaml, step 3): put the file there or "
                                      "change the path"),
    "apply.images": ("folder", "the new images the apply target counts objects in"),
}


def check_setting_files(config: dict[str, Any], file: str = "config") -> None:
    """Every file or folder a setting names exists (relative paths: from the working directory), else one
    UserError naming the setting, instead of Snakemake's MissingInputException about a path."""
    for key, (kind, what) in SETTING_FILES.items():
        section, name = key.split(".")
        path = (config.get(section) or {}).get(name)
        if path is None:
            continue
        found = Path(path).is_dir() if kind == "folder" else Path(path).is_file()
        if not found:
            problem = "is a folder, not a file" if kind == "file" and Path(path).is_dir() else "not found"
            raise UserError(f"{kind} {path} {problem} ({what})", file, key)


def load_workflow_config(config: dict[str, Any], schema_path: str | Path, file: str = "config",
                         check_files: bool = False) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """What the Snakefile needs at parse time: the validated config (defaults filled, and
    ``evaluation.label_set`` resolved to a label set of the dataset), the rater names and the sweep's
    configurations; any problem is one UserError naming the key. ``check_files``: also that every file a
    setting names exists (``check_setting_files``; the Snakefile asks for it, the cross-key rules not)."""
    checked = validate(config, schema_path, file)
    if check_files:
        check_setting_files(checked, file)
    raters, configs = check_workflow_config(checked, file)
    checked["evaluation"]["label_set"] = headline_label_set(checked, file)
    return checked, raters, configs
