"""Model and training settings, as the workflow schema defines them (no torch here).

Every setting, its type, range and default is written once, in ``multirater/config/schema.yaml``
(``definitions.model``, ``definitions.training``; a job's configuration file is
``definitions.training_job``). This module checks values against those definitions and completes
them with their defaults; it has no table of its own.

Checking and completing are separate on purpose: each entry point checks once (the workflow at
parse time, ``multirater sweep`` and ``multirater train --config`` when they read their file), and
everything after that only completes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from multirater.config.schema import (
    WORKFLOW_ONLY, check_model_rules, defaults, job_properties, read_schema, schema_definition, schema_problem,
)
from multirater.core.errors import UserError
from multirater.core.files import read_yaml

# Defaults that depend on the architecture (the schema's default is null for these): goat is the
# paper's detector, with its box NMS, detections per image and trainable stages.
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "goat": {"detections_per_img": 1000, "nms_thresh": 0.4, "trainable_layers": 4},
    "other": {"detections_per_img": 300, "nms_thresh": 0.5, "trainable_layers": 5},
}


def setting_names(section: str) -> list[str]:
    """The job keys of ``section`` (``model`` or ``training``), in the schema's order."""
    return list(job_properties(section))


@functools.cache
def _validator(definition: str) -> Any:
    import jsonschema

    schema = {"$ref": f"#/definitions/{definition}", "definitions": read_schema()["definitions"]}
    return jsonschema.Draft202012Validator(schema)


def check(values: Any, definition: str, file: Any = None, where: str = "") -> None:
    """Raise one UserError naming the key if ``values`` do not satisfy ``definitions.<definition>``.

    ``where`` is the key path of ``values`` in its file (``training``, ``sweep.grid``): the error
    names ``where.<key>``. A model section is also checked for what the schema cannot say.
    """
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(definition).iter_errors(values))
    if error is not None:
        problem = schema_problem(error, file)
        inner = "" if problem.item == "(top level)" else problem.item
        raise UserError(problem.problem, file, ".".join(p for p in (where, inner) if p) or None)
    if definition == "model":
        check_model_rules(values, file, where or "model")
    elif definition == "training_job":
        check_model_rules((values or {}).get("model"), file, "model")


def complete_training(values: dict[str, Any] | None) -> dict[str, Any]:
    """Checked training settings with every missing key at its default (no checks here)."""
    out = {**defaults("training"), **(values or {})}
    for key in WORKFLOW_ONLY["training"]:
        out.pop(key, None)
    # freeze: the paper's search space says true/false; they mean backbone/none.
    if isinstance(out["freeze"], bool):
        out["freeze"] = "backbone" if out["freeze"] else "none"
    out["lr"] = float(out["lr"])
    return out


def complete_model(values: dict[str, Any] | None) -> dict[str, Any]:
    """Checked model settings with every missing key at its default and the architecture's values
    where the setting is null (no checks here)."""
    out = {**defaults("model"), **(values or {})}
    architecture = ARCHITECTURE_DEFAULTS["goat" if out["name"] == "goat" else "other"]
    for key, value in architecture.items():
        if out[key] is None:
            out[key] = value
    return out


def validate_training(values: Any, file: Any = None, section: str = "training") -> dict[str, Any]:
    """Check training settings (one UserError naming ``section.key``) and complete them."""
    check(values, "training", file, section)
    return complete_training(values)


def validate_model(values: Any, file: Any = None, section: str = "model") -> dict[str, Any]:
    """Check model settings (one UserError naming ``section.key``) and complete them."""
    check(values, "model", file, section)
    return complete_model(values)


def job_config(model: dict[str, Any] | None, training: dict[str, Any] | None, config_id: str) -> dict[str, Any]:
    """A job's configuration, completed: ``{model, training, config_id}`` (the file format)."""
    return {"model": complete_model(model), "training": complete_training(training), "config_id": config_id}


def read_training_config(path: str | Path) -> dict[str, Any]:
    """Read and check a job's training configuration file (as ``multirater sweep --config-dir``
    writes it), once; the result is complete and needs no further checks."""
    path = Path(path)
    data = read_yaml(path)
    check(data, "training_job", path)
    data = data or {}
    # A relative base_checkpoint is relative to the working directory (where Snakemake runs jobs).
    return job_config(data.get("model"), data.get("training"),
                      data.get("config_id", schema_definition("training_job")["properties"]["config_id"]["default"]))
