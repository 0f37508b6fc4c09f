"""`make mechanism`'s machinery for real, on a tiny design: an evidence run with an arm (the graded preset, partial
coverage, the backbone trained) through Snakemake, the cell's whole workflow in its own folder, then the summary,
the ranges, the learned-bias diagnostic and the arm's figure; a rerun has nothing to do. To stay cheap the run
takes the consensus as D-ECE-soft's one label set (D-ECE-soft is then D-ECE); the plan of a cell with every rater's
test labels is checked without running it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from test_workflow import planned_jobs, snakemake

CONFIG = {
    "evidence": {"out": "results/mechanism", "arms": {"paper": {
        "preset": "graded", "biases": [1.0], "seeds": [3],
        "config": {"dataset": {"synthetic": {"rater_coverage": "partial"}},
                   "training": {"freeze": "none", "epochs": 2, "patience": 1}}}}},
    "dataset": {"manifest": None, "synthetic": {"images": 8, "consensus_images": 3, "raters": 2, "size": 64,
                                                "base_images": 4}},
    "splits": {"val_fraction": 0.25, "seed": 1},
    "model": {"name": "tiny", "min_size": 64, "max_size": 64, "detections_per_img": 30},
    "pretrain": {"epochs": 1, "batch_size": 4},
    "training": {"epochs": 1, "batch_size": 4, "augment": False},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
    "evaluation": {"bootstrap": 10, "soft_label_sets": ["consensus"]},
    "prediction": {"splits": ["test"]},
    "resources": {"device": "cpu"},
}


@pytest.mark.slow
def test_mechanism_arm_end_to_end(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    config = tmp_path / "mechanism.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    snakemake(work, config, "evidence")
    out = work / "results" / "mechanism"
    cell = out / "paper-b1-s3"
    cell_config = yaml.safe_load((cell / "config.yaml").read_text())
    assert cell_config["evidence"]["arm"] == "paper" and cell_config["dataset"]["synthetic"]["bias"] == 1.0
    assert cell_config["training"]["freeze"] == "none" and cell_config["training"]["patience"] == 1
    manifest = yaml.safe_load((cell / "results" / "data" / "synthetic" / "dataset.yaml").read_text())
    assert manifest["rater_coverage"] == "partial"
    run = json.loads((cell / "run.json").read_text())
    assert run["bias"] == 1.0 and run["seconds"] > 0

    summary = pd.read_csv(out / "summary.csv")
    assert set(summary[["arm", "preset", "bias", "data_seed"]].itertuples(index=False)) == {("paper", "graded", 1.0, 3)}
    dece = summary[summary.metric == "D-ECE"].set_index("iou")
    soft = summary[summary.metric == "D-ECE-soft"].set_index("iou")
    assert sorted(dece.index) == sorted(soft.index) == [0.5, 0.75]
    # one label set, the consensus: D-ECE-soft is D-ECE, paired interval and all
    for column in ("lse", "rse", "difference", "diff_p2.5", "diff_p97.5"):
        assert soft[column].tolist() == pytest.approx(dece[column].tolist())
    cells = pd.read_csv(out / "cells.csv")
    assert {"learned_bias_auc", "ls_score_one_rater", "score_rs-rater2_on_rater2_only"} <= set(cells.columns)
    assert 0.0 <= cells.iloc[0]["ls_score_one_rater"] <= 1.0
    ranges = pd.read_csv(out / "ranges.csv")
    assert (ranges[ranges.quantity == "LSE - RSE"]["n_seeds"] == 1).all()
    assert pd.read_csv(out / "runs.csv").iloc[0]["minutes"] == round(run["seconds"] / 60, 1)
    # where the cell ran: its workflow's results/run.json, in cells.csv
    provenance = json.loads((cell / "results" / "run.json").read_text())
    assert cells.iloc[0]["commit"] == provenance["commit"] and cells.iloc[0]["torch"]
    for stem in ("fig_evidence", "fig_learned_bias", "fig_paper"):
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    # the same command again: nothing left to do
    assert planned_jobs(snakemake(work, config, "evidence", "-n")) == {}

    # a cell with every rater's test labels: each model and ensemble is evaluated on them too, and the
    # headline evaluations add D-ECE-soft against them
    labelled = json.loads(json.dumps(cell_config))
    labelled["dataset"]["synthetic"]["rater_test_labels"] = True
    del labelled["evaluation"]["soft_label_sets"]
    (tmp_path / "labelled.yaml").write_text(yaml.safe_dump(labelled))
    (tmp_path / "plan").mkdir()
    plan = snakemake(tmp_path / "plan", tmp_path / "labelled.yaml", "-n", "results/tables/metrics.csv")
    soft = "--soft-gt results/data/synthetic/rater1_test.json results/data/synthetic/rater2_test.json"
    evaluations = [line for line in plan.splitlines() if "multirater evaluate --gt" in line]
    headline = [line for line in evaluations if "--label-set consensus" in line]
    assert len(headline) == 6 + 2 and all(soft in line for line in headline)  # 6 models, LSE and RSE
    assert sum("--label-set rater1_test" in line for line in evaluations) == 6 + 2
    assert not any(soft in line for line in evaluations if "--label-set consensus" not in line)
