"""The hyperparameter space: grid/random expansion, stable ids, config files, no torch at import."""

import hashlib
import json
import math
import subprocess
import sys

import numpy as np
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


# ----------------------------------------------------------------------------- per-configuration seeds


def seeded_config(per_config, seed=42):
    return {"training": {"seed": seed, "seed_per_config": per_config},
            "sweep": {"grid": {"lr": [0.001, 0.0003]}}}


def draws(training):
    """What a configuration's seed decides: epoch orders, LS draws (3 raters), augmentation seeds."""
    from multirater.training.labels import Strategy, epoch_order, training_sources
    from multirater.training.loop import epoch_seed

    seed, images = training["seed"], list(range(1, 41))
    orders = [epoch_order(seed, epoch, images) for epoch in range(3)]
    ls = [training_sources(Strategy("ls"), ["a", "b", "c"], seed, epoch, i)[0] for epoch in range(3) for i in images]
    return orders, ls, [epoch_seed(seed, epoch) for epoch in range(3)]


def test_per_configuration_seeds_differ_between_configurations_and_repeat_exactly():
    from multirater.training.sweep import training_config

    config = seeded_config(True)
    first, second = (training_config(config, e) for e in expand_sweep(config))
    for job in (first, second):  # the formula, written out: numpy's SeedSequence of (training.seed, id as hex)
        expected = int(np.random.SeedSequence([42, int(job["config_id"], 16)]).generate_state(1, np.uint32)[0])
        assert job["training"]["seed"] == expected and job["training"]["seed_per_config"] is True
    orders_1, ls_1, augment_1 = draws(first["training"])
    orders_2, ls_2, augment_2 = draws(second["training"])
    assert all(a != b for a, b in zip(orders_1, orders_2))
    assert ls_1 != ls_2 and all(a != b for a, b in zip(augment_1, augment_2))
    # the same configuration, expanded again, draws exactly the same
    again = training_config(config, expand_sweep(config)[0])
    assert again == first and draws(again["training"]) == (orders_1, ls_1, augment_1)
    # training.seed still matters: another base seed gives other seeds
    other = training_config(seeded_config(True, seed=7), expand_sweep(seeded_config(True, seed=7))[0])
    assert other["config_id"] == first["config_id"] and other["training"]["seed"] != first["training"]["seed"]


def test_without_per_configuration_seeds_every_configuration_keeps_training_seed():
    from multirater.training.sweep import pretrain_config, training_config

    config = seeded_config(False)
    jobs = [training_config(config, e) for e in expand_sweep(config)]
    assert [j["training"]["seed"] for j in jobs] == [42, 42]
    assert draws(jobs[0]["training"]) == draws(jobs[1]["training"])
    assert pretrain_config(seeded_config(True))["training"]["seed"] == 42  # one pretrain job: its seed as given


def test_cli_writes_each_configurations_seed_into_its_file(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(seeded_config(True)))
    assert main(["sweep", "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "configs.tsv"),
                 "--config-dir", str(tmp_path / "configs")]) == 0
    ids = [line.split("\t")[0] for line in (tmp_path / "configs.tsv").read_text().splitlines()[1:]]
    seeds = {cid: yaml.safe_load((tmp_path / "configs" / f"{cid}.yaml").read_text())["training"]["seed"] for cid in ids}
    assert len(set(seeds.values())) == 2
    for cid, seed in seeds.items():
        assert seed == int(np.random.SeedSequence([42, int(cid, 16)]).generate_state(1, np.uint32)[0])
