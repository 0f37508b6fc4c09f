"""The hyperparameter space: grid/random expansion, stable ids, config files, no torch at import."""

import hashlib
import json
import math
import subprocess
import sys

import pytest
import yaml

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.training.sweep import configs_tsv, expand_sweep


def sha8(values):
    # The contract's formula, written out independently of the implementation.
    return hashlib.sha1(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]


def test_grid_is_the_product_with_contract_ids():
    entries = expand_sweep({"sweep": {"grid": {"lr": [0.001, 0.0003], "augment": [True, False]}}})
    assert len(entries) == 4
    values = [{k: v for k, v in e.items() if k != "config_id"} for e in entries]
    assert sorted(map(json.dumps, values)) == sorted(
        json.dumps({"augment": a, "lr": lr}) for lr in (0.001, 0.0003) for a in (True, False)
    )
    for e, v in zip(entries, values):
        assert e["config_id"] == sha8(v)
    assert len({e["config_id"] for e in entries}) == 4


def test_ids_stable_when_configurations_are_added_or_defaults_change():
    before = expand_sweep({"sweep": {"grid": {"lr": [0.001, 0.0003]}}})
    after = expand_sweep({
        "training": {"epochs": 99, "patience": 3},  # changing anything else ...
        "sweep": {"grid": {"lr": [0.001, 0.0003, 0.0001]}},  # ... and adding a configuration
    })
    ids_before = {e["config_id"]: e["lr"] for e in before}
    ids_after = {e["config_id"]: e["lr"] for e in after}
    assert ids_before.items() <= ids_after.items()
    assert len(ids_after) == 3


def test_random_prefix_is_stable_and_draws_lie_in_the_space():
    space = {"lr": {"loguniform": [5.0e-6, 5.0e-3]}, "batch_size": {"choice": [8, 16, 32, 64]},
             "freeze": {"choice": ["backbone", "none"]}, "augment": {"choice": [True, False]}}
    small = expand_sweep({"sweep": {"random": {"n": 5, "seed": 42, "space": space}}})
    big = expand_sweep({"sweep": {"random": {"n": 40, "seed": 42, "space": space}}})
    assert big[:5] == small
    assert all(5.0e-6 <= e["lr"] <= 5.0e-3 for e in big)
    assert {e["batch_size"] for e in big} <= {8, 16, 32, 64}
    # log-uniform: about half the draws below the geometric mean of the bounds (40 draws, wide margin)
    below = sum(e["lr"] < math.sqrt(5.0e-6 * 5.0e-3) for e in big)
    assert 8 <= below <= 32
    other_seed = expand_sweep({"sweep": {"random": {"n": 5, "seed": 7, "space": space}}})
    assert [e["config_id"] for e in other_seed] != [e["config_id"] for e in small]


@pytest.mark.parametrize("sweep, item", [
    ({"grid": {"learning_rate": [0.1]}}, "sweep.grid.learning_rate"),
    ({"grid": {"lr": 0.1}}, "sweep.grid.lr"),
    ({"grid": {"lr": [0.1]}, "random": {"n": 1, "space": {"lr": {"choice": [1]}}}}, "sweep"),
    ({"random": {"n": 2, "space": {"lr": {"gaussian": [0, 1]}}}}, "sweep.random.space.lr"),
    ({"grid": {"optimizer": ["adam", "rmsprop"]}}, "optimizer"),
    ({"grid": {"epochs": [2, 0]}}, "sweep.grid.epochs"),
    ({"random": {"n": 3, "space": {"epochs": {"randint": [0, 0]}}}}, "sweep.random.space.epochs"),
])
def test_bad_sweep_is_one_clear_error(sweep, item):
    with pytest.raises(UserError) as err:
        expand_sweep({"sweep": sweep}, "config.yaml")
    assert "config.yaml" in str(err.value) and item in str(err.value)


def test_cli_writes_tsv_and_one_config_file_per_id(tmp_path, capsys):
    config = {
        "model": {"name": "tiny", "min_size": 128, "max_size": 128},
        "pretrain": {"epochs": 3, "lr": 0.002},
        "training": {"epochs": 4, "freeze": "backbone"},
        "sweep": {"grid": {"lr": [0.001, 0.0003], "freeze": [True, False]}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rc = main(["sweep", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "configs.tsv"),
               "--config-dir", str(tmp_path / "configs")])
    assert rc == 0
    lines = (tmp_path / "configs.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["config_id", "freeze", "lr"]
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    assert len(rows) == 4
    for row in rows:
        data = yaml.safe_load((tmp_path / "configs" / f"{row['config_id']}.yaml").read_text())
        assert data["config_id"] == row["config_id"]
        assert data["training"]["lr"] == float(row["lr"])
        assert data["training"]["freeze"] == ("backbone" if row["freeze"] == "true" else "none")
        assert data["training"]["epochs"] == 4  # the defaults are merged in
        assert data["model"]["min_size"] == 128
        assert row["config_id"] == sha8({"freeze": row["freeze"] == "true", "lr": float(row["lr"])})
    pre = yaml.safe_load((tmp_path / "configs" / "pretrain.yaml").read_text())
    assert pre["training"]["epochs"] == 3 and pre["training"]["lr"] == 0.002 and pre["training"]["freeze"] == "none"


def test_bad_config_file_fails_without_output(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("sweep:\n  grid: {lr: [0.001], bogus: [1]}\n")
    rc = main(["sweep", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "configs.tsv")])
    assert rc == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "configs.tsv").exists()


def test_tsv_of_no_sweep_is_one_default_configuration():
    entries = expand_sweep({"training": {"lr": 0.01}})
    assert entries == [{"config_id": sha8({})}]
    assert configs_tsv(entries) == f"config_id\n{sha8({})}\n"


def test_importable_without_torch():
    code = "import sys, multirater.training.sweep, multirater.training.commands; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
