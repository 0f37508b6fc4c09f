"""Every list of names has one home, a registry. What the code does not derive from it, the workflow schema's
enums and patterns, is kept equal to it here; the CLI's choices and the rules' wildcard constraints are derived
from it (checked here too), and no rule spells a registry's names out again."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from multirater.cli import build_parser
from multirater.config.schema import read_schema

ROOT = Path(__file__).resolve().parents[1]
RULES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


def schema_node(*keys: str) -> dict:
    """The schema of a config key (``"calibration", "headline", "approach"``), following ``$ref``s."""
    schema = read_schema()
    node = schema
    for key in keys:
        node = node["properties"][key]
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def cli_choices(*path: str) -> list[str]:
    """The choices of an option: ``cli_choices("members", "--kind")``, or of a nested command's option."""
    parser = build_parser()
    *commands, option = path
    for command in commands:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    return list(action.choices)


def spelled_in_rules(names: list[str]) -> list[str]:
    """The places where a rule file writes two of ``names`` as a regex alternation or list, e.g. ``lse|rse``."""
    found = []
    for path in RULES:
        text = path.read_text()
        for a in names:
            for b in names:
                if a != b and re.search(rf"\b{re.escape(a)}[\"']?\s*[|,]\s*[\"']?{re.escape(b)}\b", text):
                    found.append(f"{path.name}: {a} .. {b}")
    return found


# --- strategies and ensemble kinds (multirater.core.strategies) ------------------------------------------

def test_ensemble_kinds_are_the_schemas_and_the_clis():
    from multirater.core.strategies import ENSEMBLE_KINDS

    assert schema_node("apply", "kind")["enum"] == list(ENSEMBLE_KINDS)
    assert cli_choices("members", "--kind") == list(ENSEMBLE_KINDS)
    assert spelled_in_rules(list(ENSEMBLE_KINDS)) == []


def test_the_headline_approach_pattern_accepts_exactly_the_approaches():
    from multirater.calibration.approaches import approach_names

    pattern = re.compile(schema_node("calibration", "headline", "approach")["pattern"])
    for approach in approach_names(["a", "rater_2"]):
        assert pattern.fullmatch(approach), approach
    for other in ("union", "xse", "rs-", "rs:a", "LS"):
        assert not pattern.fullmatch(other), other


def test_strategies_and_kinds_by_hand():
    from multirater.core.strategies import (
        ENSEMBLE_KINDS, ensemble_of, strategy_label, strategy_names, strategy_order, strategy_rater,
    )

    assert strategy_names(["b", "a"]) == ["ls", "rs-b", "rs-a"]
    assert [strategy_rater(s) for s in ("rs-b", "rs:b", "ls", "union")] == ["b", "b", None, None]
    assert sorted(["rs-b", "ls", "rs-a"], key=strategy_order) == ["ls", "rs-a", "rs-b"]
    assert [strategy_label(s) for s in ("ls", "rs-a")] == ["LS", "RS (a)"]
    assert (ensemble_of("ls"), ensemble_of("rs-a")) == ("lse", "rse")
    # LSE_6 takes the top 6 label-sampling models; RSE_6 of 3 raters the top 2 of each rater
    assert ENSEMBLE_KINDS["lse"].members_per_source(6, 3) == 6 and ENSEMBLE_KINDS["rse"].members_per_source(6, 3) == 2


def test_every_ensemble_kind_has_a_colour():
    from multirater.core.plot_style import STRATEGY_COLORS
    from multirater.core.strategies import ENSEMBLE_KINDS

    assert all(spec.label in STRATEGY_COLORS for spec in ENSEMBLE_KINDS.values())


# --- calibrator methods and targets (multirater.calibration.methods) -------------------------------------

def test_calibrator_methods_and_targets_are_the_schemas_and_the_clis():
    from multirater.calibration.methods import METHODS, TARGETS

    definitions = read_schema()["definitions"]
    assert definitions["calibration_method"]["enum"] == list(METHODS)
    assert definitions["calibration_target"]["enum"] == list(TARGETS)
    assert cli_choices("calibrate", "--method") == list(METHODS)
    assert cli_choices("calibrate", "--target") == list(TARGETS)
    assert spelled_in_rules(list(METHODS)) == [] and spelled_in_rules(list(TARGETS)) == []


# --- synthetic rater presets (multirater.data.synthetic.presets) -----------------------------------------

def test_rater_presets_are_the_schemas_and_the_clis():
    from multirater.data.synthetic.presets import PRESET_NAMES, PRESETS

    definitions = read_schema()["definitions"]
    assert definitions["rater_preset"]["enum"] == list(PRESET_NAMES)
    assert definitions["fixed_rater_preset"]["enum"] == list(PRESETS)  # the presets without a bias
    assert schema_node("dataset", "synthetic", "preset")["enum"] == list(PRESET_NAMES)  # through the $ref
    assert schema_node("evidence", "presets")["items"]["$ref"] == "#/definitions/fixed_rater_preset"
    arm = schema_node("evidence", "arms")["additionalProperties"]["properties"]
    assert arm["preset"]["$ref"] == "#/definitions/rater_preset"
    assert cli_choices("synth", "--preset") == list(PRESET_NAMES)


# --- annotation formats (multirater.data.formats) --------------------------------------------------------

def test_import_formats_are_the_clis_and_each_has_its_reader():
    from multirater.data.formats import FORMATS, IMPORT_FORMATS

    assert cli_choices("import", "--format") == list(IMPORT_FORMATS)
    for name in IMPORT_FORMATS:
        spec = FORMATS[name]
        reader = spec.reader()
        assert callable(reader.collect_with_skipped), name
        assert hasattr(reader, "collect_published") == spec.published, name


# --- metrics (multirater.evaluation.metrics) -------------------------------------------------------------

def test_evaluate_writes_exactly_the_registered_metrics():
    from multirater.evaluation.evaluate import evaluate
    from multirater.evaluation.metrics import LOWER_IS_BETTER, METRICS
    from multirater.io.detections import parse_detections

    gt = {"images": [{"id": 1, "width": 64, "height": 64}], "categories": [{"id": 1, "name": "o"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "area": 100,
                           "iscrowd": 0}]}
    detections = parse_detections({"image_ids": [1], "detections": [
        {"image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "score": 0.9}]})
    expected = [(name, iou) for name, metric in METRICS.items()
                for iou in ((0.5, 0.75) if metric.per_iou else (None,))]
    # without soft label sets every metric but those that need them (D-ECE-soft); with them, every one
    for soft_gt in ([], [gt]):
        records = evaluate(gt, detections, iou_thresholds=(0.5, 0.75), bootstrap=0, dece_reference_draws=0,
                           soft_gt=soft_gt)["metrics"]
        written = [(r["metric"], r["iou"]) for r in records]
        wanted = [key for key in expected if soft_gt or not METRICS[key[0]].soft_gt]
        assert sorted(written, key=str) == sorted(wanted, key=str)
    # D-ECE and D-ECE-soft are errors (Campi et al.); the COCO metrics are scores
    assert {"D-ECE", "D-ECE-soft"} <= LOWER_IS_BETTER
    assert not LOWER_IS_BETTER & {n for n, m in METRICS.items() if m.coco}


# --- the other lists the schema and the CLI spell: kept equal to the code's own tuple ---------------------

def test_fusion_evaluation_and_sweep_settings_are_the_codes():
    from multirater.core.fusion import MERGES, SCORE_NORMS
    from multirater.evaluation.settings import DECE_FEATURES, MATCHINGS
    from multirater.training.sweep import DISTRIBUTIONS

    assert schema_node("fusion", "score_norm")["enum"] == cli_choices("fuse", "--score-norm") == list(SCORE_NORMS)
    assert schema_node("fusion", "merge")["enum"] == cli_choices("fuse", "--merge") == list(MERGES)
    assert schema_node("evaluation", "matching")["enum"] == cli_choices("evaluate", "--matching") == list(MATCHINGS)
    assert schema_node("evaluation", "dece_features")["items"]["enum"] == cli_choices("evaluate", "--dece-features") \
        == list(DECE_FEATURES)
    random_space = schema_node("sweep", "random", "space")["additionalProperties"]
    assert random_space["propertyNames"]["enum"] == list(DISTRIBUTIONS)


# --- an ensemble's files (multirater.ensembles.files) ----------------------------------------------------

def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code, docstrings left out."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_fused_file_is_spelled_once():
    package = ROOT / "workflow" / "multirater"
    spelled = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
               if any("fused.json" in s for s in _code_strings(p))]
    assert spelled == ["ensembles/files.py"]
    rules = [p.name for p in RULES if any("fused.json" in line for line in p.read_text().splitlines()
                                          if not line.lstrip().startswith("#"))]
    assert rules == []
