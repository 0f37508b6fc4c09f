"""Training replicates (``training.replicates``): stable ids, distinct seeds, job files untouched, and a real
run that trains the selected configurations' replicates and draws ensemble members from them."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import yaml

from multirater.config import SCHEMA_PATH
from multirater.workflow_config import load_workflow_config
from multirater.core.errors import UserError
from multirater.training.replicates import replicate_config, replicate_id, replicate_ids, replicate_seed
from multirater.training.sweep import expand_sweep, training_config
from test_workflow import CONFIG, planned_jobs, snakemake, write_config


def test_replicate_ids_are_stable_and_seeds_differ():
    config, _, configs = load_workflow_config({**CONFIG, "training": {**CONFIG["training"], "replicates": 3}},
                                              SCHEMA_PATH)
    ids = [c["config_id"] for c in configs]
    three, five = replicate_ids(ids, 3), replicate_ids(ids, 5)
    # growing N keeps every existing replicate's id; the id is the documented hash of (configuration, r)
    assert three == {k: v for k, v in five.items() if v[1] < 3} and len(five) == 4 * len(ids)
    for rid, (cid, r) in five.items():
        canonical = json.dumps({"config_id": cid, "replicate": r}, sort_keys=True, separators=(",", ":"))
        assert rid == hashlib.sha1(canonical.encode()).hexdigest()[:8] == replicate_id(cid, r)
    assert replicate_id(ids[0], 0) == ids[0]
    # replicate r of a configuration: its own id and seed, everything else replicate 0's
    for entry in configs:
        job = training_config(config, entry)
        runs = [job] + [replicate_config(job, r) for r in range(1, 5)]
        seeds = [run["training"]["seed"] for run in runs]
        assert len(set(seeds)) == 5, seeds
        assert [run["config_id"] for run in runs] == [replicate_id(entry["config_id"], r) for r in range(5)]
        for run in runs[1:]:
            assert {**run["training"], "seed": None} == {**job["training"], "seed": None}
            assert run["model"] == job["model"]
        assert seeds[1] == replicate_seed(job["training"]["seed"], entry["config_id"], 1)
    # a job's configuration file never holds the workflow-only key (so no model retrains when it changes)
    assert "replicates" not in training_config(config, configs[0])["training"]


@pytest.mark.parametrize("changes, message", [
    ({"pretrain": {"epochs": 1, "replicates": 2}}, "config: pretrain.replicates: replicates are of the selected"),
    ({"sweep": {"grid": {"replicates": [1, 2]}}}, "config: sweep.grid.replicates: unknown training key 'replicates'"),
    ({"training": {"replicates": 0}}, "config: training.replicates: 0 is less than the minimum of 1"),
    ({"evaluation": {"member_draws": 1}}, "config: evaluation.member_draws: must be 0 (off) or at least 2"),
])
def test_bad_replicate_settings_are_one_error_naming_the_key(changes, message):
    with pytest.raises(UserError) as err:
        load_workflow_config(json.loads(json.dumps({**CONFIG, **changes})), SCHEMA_PATH)
    assert str(err.value).startswith(message)


def test_the_demo_sweep_files_do_not_change():
    """training.replicates absent or 1 leaves every configuration file as it was (no retraining)."""
    base, _, configs = load_workflow_config(json.loads(json.dumps(CONFIG)), SCHEMA_PATH)
    one, _, _ = load_workflow_config({**CONFIG, "training": {**CONFIG["training"], "replicates": 1}}, SCHEMA_PATH)
    assert [training_config(base, c) for c in configs] == [training_config(one, c) for c in configs]
    assert expand_sweep(base) == expand_sweep(one)


@pytest.mark.slow
def test_replicates_are_trained_for_the_selection_and_widen_the_pool(tmp_path, demo_shaped_run):
    """A real run (the shared one: 2 configurations, LS ensembles of 2 from the 2 selected LS models): with
    one run each the pool cannot vary the members (a warning, the image interval); with training.replicates: 2
    the selected models' replicates are trained after the selection, each with its own seed, and the LSE's
    members are drawn from them. Raising it to 3 trains only the new replicates: no id changes."""
    assert demo_shaped_run.config["ensembles"] == {"sizes": [2]}
    work, _ = demo_shaped_run.copy(tmp_path)
    r = work / "results"
    table = pd.read_csv(r / "tables" / "lse_vs_rse.csv")
    assert (table["interval"] == "images").all() and not table["significant"].any()
    assert table["warning"].str.contains("LSE_2 takes all 2 selected ls models").all()

    twice = write_config(tmp_path / "twice.yaml", training={**CONFIG["training"], "replicates": 2})
    plan = planned_jobs(snakemake(work, twice, "-n", "results/tables/lse_vs_rse.csv"))
    assert plan["pool"] == 1 and "pretrain" not in plan and "select" not in plan, plan  # the selection stands
    snakemake(work, twice, "results/tables/lse_vs_rse.csv")
    pool = json.loads((r / "selection" / "pool.json").read_text())
    selected = pd.read_csv(r / "selection" / "selection.csv", dtype={"config_id": str})
    selected = selected[selected.selected]
    assert [(m["strategy"], m["config_id"]) for m in pool["models"]] == list(zip(selected.strategy, selected.config_id))
    seeds = {}
    for m in pool["models"]:
        first, second = (rep["model_id"] for rep in m["replicates"])
        assert first == m["config_id"] and second == replicate_id(m["config_id"], 1)
        for model_id in (first, second):
            status = json.loads((r / "models" / m["strategy"] / model_id / "status.json").read_text())
            assert status["status"] == "ok" and status["config_id"] == model_id
            seeds[(m["strategy"], model_id)] = yaml.safe_load(
                (r / "sweep" / "configs" / f"{model_id}.yaml").read_text())["training"]["seed"]
        assert seeds[(m["strategy"], first)] != seeds[(m["strategy"], second)]
    members = json.loads((r / "metrics" / "members" / "2.json").read_text())
    lse = next(e for e in members["ensembles"] if e["kind"] == "lse")
    assert lse["varies"] and lse["warning"] is None
    replicas = {m["replicates"][1]["model_id"] for m in pool["models"]}
    assert any(set(d) & replicas for d in lse["draws"])
    table = pd.read_csv(r / "tables" / "lse_vs_rse.csv")
    assert (table["interval"] == "members+images").all()
    significance = pd.read_csv(r / "tables" / "significance.csv")
    assert (significance["interval"] == "members+images").all()

    statuses = {p: p.stat().st_mtime_ns for p in (r / "models").glob("*/*/status.json")}
    thrice = write_config(tmp_path / "thrice.yaml", training={**CONFIG["training"], "replicates": 3})
    snakemake(work, thrice, "results/tables/lse_vs_rse.csv")
    assert {p: p.stat().st_mtime_ns for p in statuses} == statuses  # no model, replicate or not, retrained
    trained = {p.parent.name for p in (r / "models").glob("*/*/status.json")} - {p.parent.name for p in statuses}
    assert trained == {replicate_id(m["config_id"], 2) for m in pool["models"]}
