"""The calibration stage in the workflow: the side-by-side table (joined files, paired D-ECE change, training
cost), the approaches and the config section's rules, Figure 5, `count --accuracy`, and one real reduced
workflow run with calibration enabled."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import CONFIG, planned_jobs, snakemake

from multirater.calibration.approaches import approach_names, approach_of, best_model, check_calibration, variant_names
from multirater.cli import main
from multirater.core.errors import UserError

BIN = Path(sys.executable).parent
RATERS = ["rater1", "rater2"]


# --- the table, from hand-made files --------------------------------------------------------------
def _metrics(path: Path, pred: str, identity: dict, dece: list[float], map_: float, reference: dict | None) -> str:
    data = {
        "identity": identity,
        "settings": {"gt": "gt.json", "pred": pred, "seed": 0, "bootstrap": len(dece) - 1},
        "n_images": 2,
        "metrics": [
            {"metric": "mAP", "iou": None, "value": map_, "std": 0.01},
            {"metric": "mAR", "iou": None, "value": map_ + 0.1, "std": 0.02},
            {"metric": "D-ECE", "iou": 0.5, "value": dece[0], "std": float(np.std(dece[1:], ddof=1)),
             "values": dece[1:]},
        ],
    }
    if reference is not None:
        data["dece_reference"] = reference
    path.write_text(json.dumps(data))
    return str(path)


def _counts(path: Path, detections: str, identity: dict, calibration: dict | None, mae: float, coverage: float) -> str:
    path.write_text(json.dumps({"detections": detections, "identity": identity, "calibration": calibration,
                                "summary": {"n_images": 2, "threshold": 0.5, "z": 1.96, "mean_true_count": 10.0,
                                            "mean_expected_count": 10.0 + mae, "mean_count_std": 1.0,
                                            "mae_expected": mae, "mae_threshold": 3.0, "coverage": coverage},
                                "images": []}))
    return str(path)


def _benchmark(path: Path, seconds: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["s\th:m:s\tmax_rss"] + [f"{s}\t0:00:00\t100.0" for s in seconds]
    path.write_text("\n".join(rows) + "\n")


def test_calibration_table_joins_files_and_computes_changes_and_cost(tmp_path):
    from multirater.calibration.tables import calibration_table

    rse = {"kind": "rse", "size": 2, "members": [
        {"strategy": "rs-rater1", "config_id": "aaaaaaaa", "source": "rater1"},
        {"strategy": "rs-rater2", "config_id": "bbbbbbbb", "source": "rater2"}]}
    ls = {"strategy": "ls", "config_id": "cccccccc"}
    bench = tmp_path / "bench"
    _benchmark(bench / "rs-rater1" / "aaaaaaaa.tsv", [100.0, 20.0])  # two runs of the job: both count
    _benchmark(bench / "rs-rater2" / "bbbbbbbb.tsv", [60.0])
    _benchmark(bench / "ls" / "cccccccc.tsv", [36.0])
    raw_dece = [0.20, 0.21, 0.19, 0.22]
    cal_dece = [0.05, 0.07, 0.04, 0.06]
    reference = {"draws": 200, "seed": 0, "mean": 0.03, "p2.5": 0.01, "p97.5": 0.06}
    metrics = [
        _metrics(tmp_path / "m_rse_cal.json", "rse_cal.json", rse, cal_dece, 0.30, reference),
        _metrics(tmp_path / "m_rse.json", "rse.json", rse, raw_dece, 0.31, reference),
        _metrics(tmp_path / "m_ls.json", "ls.json", ls, [0.1, 0.1, 0.1, 0.1], 0.25, None),
    ]
    calibration = {"method": "logistic", "target": "soft", "reference": None}
    counts = [
        _counts(tmp_path / "c_rse_cal.json", "rse_cal.json", rse, calibration, 1.5, 0.5),
        _counts(tmp_path / "c_rse.json", "rse.json", rse, None, 9.0, 0.0),
        _counts(tmp_path / "c_ls.json", "ls.json", ls, None, 7.0, 0.5),
    ]
    table, missing = calibration_table(metrics, counts, bench)
    assert missing == []
    # single models first, then the ensembles; uncalibrated before calibrated
    assert table[["approach", "kind", "size", "method", "target"]].values.tolist() == [
        ["ls", "single", 1, "uncalibrated", ""], ["rse", "rse", 2, "uncalibrated", ""],
        ["rse", "rse", 2, "logistic", "soft"]]
    cal = table.iloc[2]
    assert cal["D-ECE@0.5"] == 0.05 and cal["mAP"] == 0.30 and cal["mAR"] == pytest.approx(0.40)
    assert cal["count_mae"] == 1.5 and cal["count_coverage"] == 0.5 and cal["count_mae_threshold"] == 3.0
    # the change is paired over the resamples: mean of (calibrated - uncalibrated) per resample
    d = np.array(cal_dece[1:]) - np.array(raw_dece[1:])
    assert cal["D-ECE@0.5_change"] == pytest.approx(d.mean())
    p = 2 * min(np.sum(d <= 0) + 1, np.sum(d >= 0) + 1) / (len(d) + 1)
    assert cal["D-ECE@0.5_change_p"] == pytest.approx(min(1.0, p))
    assert math.isnan(table.iloc[1]["D-ECE@0.5_change"])  # the uncalibrated row has no change
    # training cost: every member's training job, every run of it, in hours
    assert cal["training_hours"] == pytest.approx((100 + 20 + 60) / 3600)
    assert table.iloc[0]["training_hours"] == pytest.approx(36 / 3600)
    assert (cal["D-ECE_reference_p2.5"], cal["D-ECE_reference_p97.5"]) == (0.01, 0.06)
    assert math.isnan(table.iloc[0]["D-ECE_reference_mean"])  # that metrics file has no reference

    # a missing benchmark leaves that approach's cost empty and is reported
    (bench / "ls" / "cccccccc.tsv").unlink()
    table, missing = calibration_table(metrics, counts, bench)
    assert missing == [str(bench / "ls" / "cccccccc.tsv")] and math.isnan(table.iloc[0]["training_hours"])

    # every counts file needs the metrics of its own detections
    with pytest.raises(UserError, match="no metrics file measured its detections rse_cal.json"):
        calibration_table(metrics[1:], counts, bench)
    # and the two files must agree on what they measured
    _counts(tmp_path / "c_bad.json", "ls.json", rse, None, 7.0, 0.5)
    with pytest.raises(UserError, match="identity differs"):
        calibration_table(metrics, [str(tmp_path / "c_bad.json")], bench)


def test_calibration_table_and_figure_commands(tmp_path, capsys):
    rse = {"kind": "rse", "size": 2, "members": [{"strategy": "rs-rater1", "config_id": "aaaaaaaa", "source": "r"}]}
    bench = tmp_path / "bench"
    _benchmark(bench / "rs-rater1" / "aaaaaaaa.tsv", [7200.0])
    metrics = [_metrics(tmp_path / "m1.json", "a.json", rse, [0.2, 0.2, 0.3], 0.3, None),
               _metrics(tmp_path / "m2.json", "b.json", rse, [0.1, 0.1, 0.1], 0.3, None)]
    counts = [_counts(tmp_path / "c1.json", "a.json", rse, None, 5.0, 0.0),
              _counts(tmp_path / "c2.json", "b.json", rse, {"method": "isotonic", "target": "hard",
                                                            "reference": "majority"}, 1.0, 1.0)]
    out = tmp_path / "calibration.csv"
    assert main(["calibration-table", "--metrics", *metrics, "--counts", *counts, "--train-benchmarks", str(bench),
                 "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert table.method.tolist() == ["uncalibrated", "isotonic"] and table.training_hours.tolist() == [2.0, 2.0]
    assert table.reference.tolist()[1] == "majority"
    stem = tmp_path / "fig5"
    assert main(["calibration-figure", "--table", str(out), "--out", str(stem)]) == 0
    assert (tmp_path / "fig5.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "fig5.pdf").read_bytes()[:4] == b"%PDF"
    capsys.readouterr()
    assert main(["calibration-figure", "--table", str(metrics[0]), "--out", str(stem)]) == 2
    assert "needs columns" in capsys.readouterr().err


# --- approaches and the config section ----------------------------------------------------------
def test_approaches_and_variants():
    assert approach_names(RATERS) == ["ls", "rs-rater1", "rs-rater2", "lse", "rse"]
    assert variant_names(["logistic", "isotonic"], ["soft"]) == ["uncalibrated", "logistic-soft", "isotonic-soft"]
    members = {"members": [{"strategy": "rs-rater1", "config_id": "11111111"},
                           {"strategy": "rs-rater1", "config_id": "22222222"},
                           {"strategy": "rs-rater2", "config_id": "33333333"}]}
    assert best_model(members, "rs-rater1") == "11111111" and best_model(members, "rs-rater2") == "33333333"
    with pytest.raises(UserError, match="has no ls member"):
        best_model(members, "ls")
    assert approach_of({"strategy": "ls", "config_id": "x"}) == ("ls", "single", 1)
    assert approach_of({"kind": "rse", "size": 4, "members": []}) == ("rse", "rse", 4)


def test_members_come_best_ranked_first():
    """The approach's single model is read from the largest ensemble's members: the first member of a
    strategy must be its rank-1 model."""
    from multirater.selection.ranking import ensemble_members

    rows = [{"strategy": s, "config_id": c, "status": "ok", "val_map": 0.0, "rank": r, "selected": True}
            for s, c, r in [("ls", "b", 2), ("ls", "a", 1), ("rs-x", "d", 2), ("rs-x", "c", 1), ("rs-y", "f", 1),
                            ("rs-y", "e", 2)]]
    assert ensemble_members(rows, "lse", 2)[0][1] == "a"
    rse = ensemble_members(rows, "rse", 4)
    assert [c for s, c, _ in rse if s == "rs-x"][0] == "c" and [c for s, c, _ in rse if s == "rs-y"][0] == "f"


@pytest.mark.parametrize("section, message", [
    ({"headline": {"approach": "rs-rater9"}}, "config: calibration.headline.approach: 'rs-rater9' is not an approach"),
    ({"methods": ["isotonic"]}, "config: calibration.headline.method: 'logistic' is not one of calibration.methods"),
    ({"targets": ["hard"]}, "config: calibration.headline.target: 'soft' is not one of calibration.targets"),
    ({"reference": "rater7"}, "config: calibration.reference: 'rater7' is not a label set of the dataset"),
])
def test_calibration_config_errors_name_the_key(section, message):
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate

    config = validate({**json.loads(json.dumps(CONFIG)), "calibration": {"enabled": True, **section}}, SCHEMA_PATH)
    with pytest.raises(UserError) as err:
        check_calibration(config, RATERS)
    assert str(err.value).startswith(message)


def test_shipped_configs_calibrate():
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate

    for name in ("config.yaml", "paper.yaml", "evidence.yaml", "multiorg.yaml"):
        config = validate(yaml.safe_load((Path(__file__).parents[1] / "config" / name).read_text()), SCHEMA_PATH)
        assert config["calibration"]["enabled"], name
        check_calibration(config, RATERS)
    assert validate({}, SCHEMA_PATH)["calibration"]["enabled"] is False  # off unless a config asks for it


# --- count --accuracy: counts on new images with the test set's evidence -------------------------
def test_count_with_accuracy_adds_the_interval_and_the_test_evidence(tmp_path, capsys):
    identity = {"strategy": "ls", "config_id": "cccccccc"}
    calibration = {"method": "logistic", "target": "soft"}
    dets = tmp_path / "new.json"
    dets.write_text(json.dumps({"format": "multirater-detections", "image_ids": [1, 2], "detections": [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},
        {"image_id": 1, "category_id": 1, "bbox": [9, 9, 5, 5], "score": 0.9}],
        "meta": {"identity": identity, "calibration": calibration}}))
    accuracy = _counts(tmp_path / "acc.json", "test.json", identity, calibration, 1.25, 0.75)
    out = tmp_path / "counts.csv"
    assert main(["count", "--detections", str(dets), "--accuracy", accuracy, "--out", str(out)]) == 0
    assert "off by 1.25 objects per image" in capsys.readouterr().out
    counts = pd.read_csv(out)
    sd = math.sqrt(0.5 * 0.5 + 0.9 * 0.1)
    assert counts.count_lower.tolist() == pytest.approx([1.4 - 1.96 * sd, 0.0])
    assert counts.count_upper.tolist() == pytest.approx([1.4 + 1.96 * sd, 0.0])
    assert counts.test_count_mae.tolist() == [1.25, 1.25] and counts.test_coverage.tolist() == [0.75, 0.75]
    # evidence about another approach or calibrator is refused
    other = _counts(tmp_path / "other.json", "test.json", identity, {"method": "isotonic", "target": "soft"}, 1, 1)
    assert main(["count", "--detections", str(dets), "--accuracy", other, "--out", str(tmp_path / "x.csv")]) == 2
    assert "measured other counts (calibration" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


# --- the workflow, for real ----------------------------------------------------------------------
# Two calibrators, one target: the detection-aware one reads the test images' sizes from the dataset.
CALIBRATION = {"enabled": True, "methods": ["logistic", "detection-aware"], "targets": ["soft"]}


def test_calibration_adds_the_validation_split_to_each_models_prediction_job(tmp_path):
    """Calibrators are fitted on validation detections: with calibration on, a run configured to predict the
    test split only has each model's one prediction job write val as well."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**json.loads(json.dumps(CONFIG)), "prediction": {"splits": ["test"]},
                                      "calibration": CALIBRATION}))
    plan = snakemake(tmp_path, config, "-n")
    outputs = re.findall(r"rule predict:\n(?:    .*\n)*?    output: (.*)\n", plan)
    assert len(outputs) == planned_jobs(plan)["predict"] == 6, plan[-3000:]
    for output in outputs:
        test, val = output.split(", ")
        assert test.startswith("results/predictions/test/") and val == test.replace("/test/", "/val/", 1)


@pytest.mark.slow
def test_workflow_with_calibration(demo_shaped_run, tmp_path):
    # calibration enabled on a copy of the shared run of CONFIG (workflow_runs.py): only its own jobs run
    work, _ = demo_shaped_run.copy(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**json.loads(json.dumps(CONFIG)), "calibration": CALIBRATION}))
    plan = planned_jobs(snakemake(work, config, "-n"))
    assert {"calibrate", "recalibrate", "count_accuracy", "calibration_table"} <= set(plan), plan
    # enabling calibration retrains nothing, and predicts nothing again where val was predicted already
    assert not {"pretrain", "train", "predict"} & set(plan), plan
    snakemake(work, config)
    r = work / "results"

    table = pd.read_csv(r / "tables" / "calibration.csv", keep_default_na=False, na_values=[""])
    approaches = ["ls", "rs-rater1", "rs-rater2", "lse", "rse"]
    variants = [("uncalibrated", "")] + [(m, t) for m in CALIBRATION["methods"] for t in CALIBRATION["targets"]]
    assert list(zip(table.approach, table.method, table.target.fillna(""))) == [
        (a, m, t) for a in approaches for m, t in variants]
    for column in ("D-ECE@0.5", "D-ECE@0.75", "D-ECE_reference_p2.5", "D-ECE_reference_p97.5", "mAP", "mAR",
                   "count_mae", "count_coverage", "training_hours", "D-ECE@0.5_change"):
        assert column in table.columns, column
    assert (table.training_hours > 0).all()
    # the approaches' models: the rank-1 model of each strategy, the members of the largest ensembles
    selection = pd.read_csv(r / "selection" / "selection.csv", dtype={"config_id": str})
    best = {s: selection[(selection.strategy == s) & (selection["rank"] == 1)].config_id.item()
            for s in ("ls", "rs-rater1", "rs-rater2")}
    for strategy, cid in best.items():
        assert set(table[table.approach == strategy].models) == {f"{strategy}/{cid}"}
    # calibrators were fitted on validation detections of the same approach
    calibrator = json.loads((r / "calibration" / "rse" / "logistic-soft" / "calibrator.json").read_text())
    assert calibrator["fitted"]["detections"] == "results/val_ensembles/rse/2/fused.json"
    fused_val = json.loads((work / calibrator["fitted"]["detections"]).read_text())
    assert fused_val["meta"]["identity"]["kind"] == "rse"

    # the count MAE of a calibrated approach against an independent recount: the sum of the scores of the
    # recalibrated test detections per image vs the number of consensus boxes per image
    consensus = json.loads((r / "data" / "synthetic" / "consensus.json").read_text())
    true = {im["id"]: 0 for im in consensus["images"]}
    for ann in consensus["annotations"]:
        true[ann["image_id"]] += 1
    for approach in ("rse", "ls"):
        recalibrated = json.loads((r / "calibration" / approach / "logistic-soft" / "test.json").read_text())
        expected = {i: 0.0 for i in recalibrated["image_ids"]}
        for d in recalibrated["detections"]:
            expected[d["image_id"]] += d["score"]
        assert sorted(expected) == sorted(true)
        mae = np.mean([abs(expected[i] - true[i]) for i in true])
        row = table[(table.approach == approach) & (table.method == "logistic") & (table.target == "soft")]
        assert row.count_mae.item() == pytest.approx(mae, rel=1e-9)

    # the uncalibrated rows are the experiment's own metrics (same file, same resamples)
    metrics = json.loads((r / "metrics" / "ensembles" / "rse" / "2.json").read_text())
    dece = [m["value"] for m in metrics["metrics"] if m["metric"] == "D-ECE" and m["iou"] == 0.5][0]
    assert table[(table.approach == "rse") & (table.method == "uncalibrated")]["D-ECE@0.5"].item() == pytest.approx(dece)
    for stem in ("fig5_calibration_cost",):
        assert (r / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    assert planned_jobs(snakemake(work, config, "-n")) == {}  # a rerun has nothing to do


def test_calibration_commands_do_not_import_heavy_libraries():
    code = ("import sys, argparse, multirater.calibration.commands as c; "
            "c.register(argparse.ArgumentParser().add_subparsers()); "
            "print([m for m in ('torch', 'matplotlib', 'pandas', 'scipy', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_approach_files(tmp_path):
    from multirater.calibration.approach_files import ApproachFiles

    members = {"format": "multirater-members", "kind": "rse", "size": 2, "members": [
        {"detections": "x", "strategy": "rs-rater1", "config_id": "11111111", "source": "rater1"},
        {"detections": "y", "strategy": "rs-rater2", "config_id": "22222222", "source": "rater2"}]}
    (tmp_path / "rse.json").write_text(json.dumps(members))
    asked = []
    files = ApproachFiles("results", 2, lambda kind: asked.append(kind) or str(tmp_path / f"{kind}.json"))
    assert files.detections("rs-rater2", "val") == "results/predictions/val/rs-rater2/22222222.json"
    assert asked == ["rse"]  # a single rs model is found among the largest RSE's members
    assert files.detections("lse", "val") == "results/val_ensembles/lse/2/fused.json"
    assert files.test_detections("rse", "uncalibrated") == "results/ensembles/rse/2/fused.json"
    assert files.test_detections("rse", "logistic-soft") == "results/calibration/rse/logistic-soft/test.json"
    assert files.metrics("rs-rater1", "uncalibrated") == "results/metrics/models/rs-rater1/11111111.json"
    assert files.metrics("lse", "uncalibrated") == "results/metrics/ensembles/lse/2.json"
    assert files.metrics("ls", "isotonic-hard") == "results/metrics/calibration/ls/isotonic-hard.json"
    assert files.apply_detections("rse") == "results/apply/rse/2/fused.json"
    assert files.apply_detections("rs-rater1") == "results/apply/predictions/rs-rater1/11111111.json"
