"""The shipped configs use the rater presets, second passes, per-configuration seeds and the evidence design;
the dataset's cross-key rules stop a bad config with one message naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multirater.config import SCHEMA_PATH
from multirater.config.schema import validate
from multirater.core.errors import UserError
from multirater.workflow_config import load_workflow_config

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "dataset": {"manifest": None, "synthetic": {"images": 8, "raters": 2}},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
}


def shipped(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("synthetic, item, message", [
    ({"rater_styles": [{"threshold": 0.5}]}, "dataset.synthetic.rater_styles",
     "gives 1 rater styles for 2 raters"),
    ({"rater_styles": [{}, {"jitter": -1}]}, "dataset.synthetic.rater_styles[1].jitter", "-1 is less than"),
    ({"rater_styles": [{}, {"miss_rate": 2.0}]}, "dataset.synthetic.rater_styles[1].miss_rate",
     "2.0 is greater than the maximum of 1"),
    ({"repeat_images": 9}, "dataset.synthetic.repeat_images", "9 is more than the 8 multi-rater images"),
])
def test_bad_rater_settings_are_one_error_naming_the_key(synthetic, item, message):
    config = json.loads(json.dumps(SMALL))
    config["dataset"]["synthetic"].update(synthetic)
    with pytest.raises(UserError) as err:
        load_workflow_config(config, SCHEMA_PATH)
    assert str(err.value).startswith(f"config: {item}: ") and message in str(err.value)


def test_rater_styles_given_per_rater_are_accepted():
    config = json.loads(json.dumps(SMALL))
    config["dataset"]["synthetic"].update(rater_styles=[None, {"threshold": 0.4, "jitter": 0.02}], repeat_images=8)
    checked, raters, _ = load_workflow_config(config, SCHEMA_PATH)
    assert raters == ["rater1", "rater2"] and checked["dataset"]["synthetic"]["preset"] == "biased"


def test_the_default_rater_model_is_biased():
    from multirater.data.synthetic import DEFAULT_PRESET

    assert DEFAULT_PRESET == "biased"
    assert validate({}, SCHEMA_PATH)["dataset"]["synthetic"]["preset"] == "biased"


def test_shipped_configs_use_biased_raters_second_passes_and_a_seed_per_configuration():
    for name in ("config.yaml", "paper.yaml", "evidence.yaml"):
        checked, _, configs = load_workflow_config(shipped(name), SCHEMA_PATH, name)
        assert checked["training"]["seed_per_config"] is True, name
        assert checked["dataset"]["synthetic"]["repeat_images"] > 0, name
        assert checked["model"]["base_checkpoint"] is None and checked["dataset"]["base_manifest"] is None, name
    demo = validate(shipped("config.yaml"), SCHEMA_PATH)
    assert demo["dataset"]["synthetic"]["preset"] == "biased"


def test_sweep_files_give_each_configuration_its_own_seed():
    """With seed_per_config every configuration file of the demo carries a different training seed."""
    from multirater.training.sweep import configuration_seed, training_config

    checked, _, configs = load_workflow_config(shipped("config.yaml"), SCHEMA_PATH)
    seeds = [training_config(checked, c)["training"]["seed"] for c in configs]
    assert len(set(seeds)) == len(configs) == 4
    assert seeds == [configuration_seed(42, c["config_id"]) for c in configs]


def test_evidence_design():
    """Both presets x 3 data seeds, LSE vs RSE at two or more sizes, on synthetic data; each cell's config is
    the evidence config with its own preset and seed, and nothing else changed."""
    from multirater.evidence.design import cell_config, evidence_cells

    checked, raters, _ = load_workflow_config(shipped("evidence.yaml"), SCHEMA_PATH, "evidence.yaml")
    cells = evidence_cells(checked)
    assert [c.name for c in cells] == ["biased-0", "biased-1", "biased-2", "noisy-0", "noisy-1", "noisy-2"]
    assert len(checked["ensembles"]["sizes"]) >= 2
    # every ensemble can draw other members (two-level intervals): a pool larger than it, or replicates
    per_rater = checked["selection"]["rs"]
    for size in checked["ensembles"]["sizes"]:
        larger = size < checked["selection"]["ls"] and size // len(raters) < per_rater
        assert larger or checked["training"]["replicates"] >= 2, size
    one = cell_config(checked, cells[4])
    assert "evidence" not in one and one["dataset"]["synthetic"]["preset"] == "noisy"
    assert one["dataset"]["synthetic"]["seed"] == 1
    rest = {**one, "dataset": None}
    assert rest == {**{k: v for k, v in checked.items() if k != "evidence"}, "dataset": None}
    assert checked["dataset"]["synthetic"]["preset"] == "biased"  # the config itself is left as it was
    # a cell config is a valid workflow config
    assert load_workflow_config(one, SCHEMA_PATH)[1] == raters


def test_evidence_needs_synthetic_data(tiny_dataset):
    from multirater.evidence.design import evidence_cells

    config = validate({"dataset": {"manifest": str(tiny_dataset)}}, SCHEMA_PATH)
    with pytest.raises(UserError) as err:
        evidence_cells(config)
    assert err.value.item == "dataset.manifest" and "must be null for the evidence run" in err.value.problem


def test_mechanism_design():
    """config/mechanism.yaml: the bias arm (5 biases x 2 seeds) and the paper arm (2 x 2) of the graded preset;
    a paper cell's config has its arm's settings on top, records its arm, and is a valid workflow config; every
    ensemble draws from a larger pool of selected models."""
    from multirater.evidence.design import cell_config, evidence_cells
    from multirater.workflow_config import check_evidence_cells

    config = shipped("mechanism.yaml")
    checked, raters, configs = load_workflow_config(config, SCHEMA_PATH, "mechanism.yaml")
    cells = evidence_cells(checked)
    assert [c.name for c in cells[:3]] == ["bias-b0-s0", "bias-b0-s1", "bias-b0.25-s0"]
    assert len(cells) == 14 and {c.seed for c in cells} == {0, 1}
    check_evidence_cells(checked, SCHEMA_PATH)
    paper = cell_config(checked, next(c for c in cells if c.name == "paper-b1-s1"))
    synthetic = paper["dataset"]["synthetic"]
    assert (synthetic["preset"], synthetic["bias"], synthetic["seed"]) == ("graded", 1.0, 1)
    assert synthetic["rater_coverage"] == "partial" and synthetic["rater_test_labels"] is True
    assert paper["training"]["freeze"] == "none" and paper["training"]["patience"] > 0
    assert paper["evidence"] == {"arm": "paper"}
    # every arm pretrains the same base model for a seed (the pretrain job inherits unset keys from training)
    from multirater.training.sweep import pretrain_config

    bases = {c.arm: pretrain_config(load_workflow_config(cell_config(checked, c), SCHEMA_PATH)[0]) for c in cells}
    assert bases["paper"] == bases["bias"]
    assert load_workflow_config(paper, SCHEMA_PATH)[0]["evaluation"]["soft_label_sets"] == ["rater1_test",
                                                                                              "rater2_test"]
    bias = cell_config(checked, cells[0])
    assert bias["training"] == checked["training"] and bias["dataset"]["synthetic"]["rater_coverage"] == "complete"
    size = max(checked["ensembles"]["sizes"])
    assert checked["selection"]["ls"] > size and checked["selection"]["rs"] > size // len(raters)
    # an arm may not change what every cell must share
    config["evidence"]["arms"]["paper"]["config"]["ensembles"] = {"sizes": [4]}
    config["selection"] = {"ls": 4, "rs": 4}
    with pytest.raises(UserError) as err:
        check_evidence_cells(load_workflow_config(config, SCHEMA_PATH)[0], SCHEMA_PATH)
    assert str(err.value) == ("config (evidence.arms.paper.config): ensembles.sizes: is the same in every cell of the "
                              "run: set it outside the arms")
