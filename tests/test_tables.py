"""Result tables: tidy metrics, Table 1 (mean/std over selected models), paired bootstrap comparisons."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.selection.ranking import rank_models, write_selection
from multirater.evaluation.bootstrap import paired_difference
from multirater.evaluation.table_files import write_tables
from multirater.evaluation.tables import holm

SETTINGS = {"gt": "consensus.json", "seed": 0, "bootstrap": 4, "iou_thresholds": [0.5, 0.75], "bins": 10}


def metrics_file(path, mAP, mAR, dece, values=None, identity=None):
    """A hand-made metrics file; ``values`` maps metric name -> bootstrap values (mean/std follow);
    ``identity`` is what the file measures (by default read off the test's own layout below)."""
    values = values or {}
    if identity is None:
        group, a, b = path.parts[-3], path.parent.name, path.stem
        identity = ({"strategy": a, "config_id": b} if group == "models"
                    else {"kind": a, "size": int(b), "members": []})

    def entry(metric, iou, value):
        e = {"metric": metric, "iou": iou, "value": value}
        v = values.get((metric, iou))
        if v is not None:
            e.update(mean=float(np.mean(v)), std=float(np.std(v, ddof=1)), values=list(v),
                     **{"p2.5": float(np.percentile(v, 2.5)), "p97.5": float(np.percentile(v, 97.5))})
        return e

    data = {"identity": identity, "settings": SETTINGS, "n_images": 4,
            "metrics": [entry("mAP", None, mAP), entry("mAR", None, mAR), entry("D-ECE", 0.5, dece)],
            "reliability": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def test_paired_difference_by_hand():
    stats = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0]))
    assert stats["diff_mean"] == 2.0 and stats["diff_std"] == 1.0
    # no resample has diff <= 0: p = 2 * (0 + 1) / (3 + 1)
    assert stats["p_value"] == pytest.approx(0.5)
    assert stats["diff_p2.5"] == pytest.approx(1.05) and stats["diff_p97.5"] == pytest.approx(2.95)
    with pytest.raises(UserError, match="same length"):
        paired_difference(np.zeros(3), np.zeros(4))


def test_holm_by_hand():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.fixture
def workflow_files(tmp_path):
    statuses = [
        {"strategy": "ls", "config_id": "aaaa0000", "status": "ok", "best_val_map": 0.9},
        {"strategy": "ls", "config_id": "bbbb0000", "status": "ok", "best_val_map": 0.8},
        {"strategy": "ls", "config_id": "cccc0000", "status": "ok", "best_val_map": 0.1},  # not selected
        {"strategy": "rs-r1", "config_id": "aaaa0000", "status": "ok", "best_val_map": 0.5},
        {"strategy": "rs-r2", "config_id": "aaaa0000", "status": "ok", "best_val_map": 0.5},
    ]
    write_selection(tmp_path / "selection.csv", rank_models(statuses, top_ls=2, top_rs=1))
    m = tmp_path / "metrics"
    boot_a = {("mAP", None): [0.4, 0.5, 0.6, 0.5]}
    boot_b = {("mAP", None): [0.3, 0.4, 0.5, 0.4]}  # always 0.1 below a
    models = [
        metrics_file(m / "models/ls/aaaa0000.json", 0.40, 0.50, 0.2, boot_a),
        metrics_file(m / "models/ls/bbbb0000.json", 0.60, 0.70, 0.2, boot_b),
        metrics_file(m / "models/ls/cccc0000.json", 0.99, 0.99, 0.2, boot_b),
        metrics_file(m / "models/rs-r1/aaaa0000.json", 0.45, 0.55, 0.1, boot_b),
        metrics_file(m / "models/rs-r2/aaaa0000.json", 0.45, 0.55, 0.1, boot_b),
    ]
    ensembles = [
        metrics_file(m / "ensembles/lse/2.json", 0.5, 0.6, 0.15,
                     {("D-ECE", 0.5): [0.15, 0.16, 0.14, 0.15], ("mAP", None): [0.5, 0.5, 0.5, 0.5]}),
        metrics_file(m / "ensembles/rse/2.json", 0.5, 0.6, 0.08,
                     {("D-ECE", 0.5): [0.08, 0.09, 0.07, 0.08], ("mAP", None): [0.5, 0.5, 0.5, 0.5]}),
    ]
    return tmp_path, models, ensembles


def test_write_tables(workflow_files):
    tmp_path, models, ensembles = workflow_files
    out = tmp_path / "tables"
    assert main(["tables", "--selection", str(tmp_path / "selection.csv"), "--out-dir", str(out),
                 "--models", *models, "--ensembles", *ensembles]) == 0

    tidy = pd.read_csv(out / "metrics.csv")
    assert list(tidy.columns) == ["kind", "size", "strategy", "config_id", "metric", "iou", "value", "mean", "std",
                                  "p2.5", "p97.5", "ref_mean", "ref_p2.5", "ref_p97.5"]
    assert len(tidy) == 3 * (len(models) + len(ensembles))  # three metrics per file
    row = tidy[(tidy.kind == "rse") & (tidy.metric == "D-ECE")].iloc[0]
    assert row["size"] == 2 and row["iou"] == 0.5 and row["value"] == 0.08 and row["mean"] == pytest.approx(0.08)

    t1 = pd.read_csv(out / "table1.csv")
    ls = t1[t1.strategy == "ls"].iloc[0]
    # the two selected LS models (0.40 and 0.60); cccc0000 is not selected
    assert ls["n_models"] == 2 and ls["mAP_mean"] == pytest.approx(0.5)
    assert ls["mAP_std"] == pytest.approx(math.sqrt(0.02)) and ls["mAR_mean"] == pytest.approx(0.6)
    assert list(t1.model) == ["LS", "RS (r1)", "RS (r2)"]
    md = (out / "table1.md").read_text()
    assert "| LS | 0.500 ± 0.14 | 0.600 ± 0.14 | 2 |" in md
    tex = (out / "table1.tex").read_text()
    assert r"LS & 0.500 $\pm$ 0.14" in tex and r"\begin{tabular}" in tex

    sig = pd.read_csv(out / "significance.csv")
    pair = sig[(sig.metric == "mAP") & (sig.model_a == "ls/aaaa0000") & (sig.model_b == "ls/bbbb0000")].iloc[0]
    assert pair["diff_mean"] == pytest.approx(0.1)
    assert pair["p_value"] == pytest.approx(2 * 1 / 5)  # 4 resamples, none <= 0
    # 4 selected models -> 6 pairs with mAP values (mAR has no bootstrap values here)
    assert len(sig[sig.metric == "mAP"]) == 6 and len(sig[sig.metric == "mAR"]) == 0

    cmp = pd.read_csv(out / "lse_vs_rse.csv")
    dece = cmp[cmp.metric == "D-ECE"].iloc[0]
    assert dece["diff_mean"] == pytest.approx(0.07) and dece["better"] == "RSE"
    assert cmp[cmp.metric == "mAP"].iloc[0]["better"] == "tie"


def test_missing_metrics_of_a_selected_model(workflow_files):
    tmp_path, models, ensembles = workflow_files
    with pytest.raises(UserError, match="ls/aaaa0000"):
        write_tables(tmp_path / "selection.csv", models[1:], ensembles, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpaired_resamples_are_refused(workflow_files, tmp_path):
    _, models, ensembles = workflow_files
    data = json.loads(open(ensembles[1]).read())
    data["settings"] = {**SETTINGS, "seed": 7}
    open(ensembles[1], "w").write(json.dumps(data))
    with pytest.raises(UserError, match="resamples are not paired: settings.seed is 7 here but 0"):
        write_tables(tmp_path / "selection.csv", models, ensembles, tmp_path / "out2")


def test_identity_comes_from_the_file_not_its_path(workflow_files):
    """Metrics files renamed and moved anywhere give the same tables: identity is read from the file."""
    tmp_path, models, ensembles = workflow_files
    moved = []
    for i, path in enumerate(models + ensembles):
        target = tmp_path / "elsewhere" / f"file{i}.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(open(path).read())
        moved.append(str(target))
    write_tables(tmp_path / "selection.csv", models, ensembles, tmp_path / "a")
    write_tables(tmp_path / "selection.csv", moved[:len(models)], moved[len(models):], tmp_path / "b")
    for name in ("metrics.csv", "table1.csv", "significance.csv", "lse_vs_rse.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text(), name


def test_a_metrics_file_without_identity_is_refused(workflow_files):
    tmp_path, models, ensembles = workflow_files
    data = json.loads(open(models[0]).read())
    del data["identity"]
    open(models[0], "w").write(json.dumps(data))
    with pytest.raises(UserError) as err:
        write_tables(tmp_path / "selection.csv", models, ensembles, tmp_path / "out")
    assert str(err.value).startswith(f"{models[0]}: identity: has no 'identity'")
    assert not (tmp_path / "out").exists()


def test_an_ensemble_file_given_as_a_model_is_refused(workflow_files):
    tmp_path, models, ensembles = workflow_files
    with pytest.raises(UserError, match="must name a single model's 'strategy' and 'config_id'"):
        write_tables(tmp_path / "selection.csv", models + ensembles[:1], ensembles, tmp_path / "out")


def test_two_files_measuring_the_same_model_are_refused(workflow_files):
    tmp_path, models, ensembles = workflow_files
    copy = tmp_path / "copy.json"
    copy.write_text(open(models[0]).read())
    with pytest.raises(UserError, match="measures ls/aaaa0000, as another metrics file does"):
        write_tables(tmp_path / "selection.csv", models + [str(copy)], ensembles, tmp_path / "out")


def test_dece_rows_carry_the_finite_sample_reference(workflow_files):
    """metrics.csv and lse_vs_rse.csv put each file's ``dece_reference`` beside its D-ECE rows (every IoU),
    and leave it empty for other metrics and for files without one."""
    tmp_path, models, ensembles = workflow_files
    bands = {"lse": {"draws": 200, "seed": 0, "mean": 0.05, "p2.5": 0.03, "p97.5": 0.08},
             "rse": {"draws": 200, "seed": 0, "mean": 0.04, "p2.5": 0.02, "p97.5": 0.07}}
    for path, kind in zip(ensembles, ("lse", "rse")):
        data = json.loads(open(path).read())
        data["metrics"].append({"metric": "D-ECE", "iou": 0.75, "value": 0.2})
        data["dece_reference"] = bands[kind]
        open(path, "w").write(json.dumps(data))
    out = tmp_path / "tables"
    write_tables(tmp_path / "selection.csv", models, ensembles, out)

    tidy = pd.read_csv(out / "metrics.csv")
    for kind, band in bands.items():
        rows = tidy[(tidy.kind == kind) & (tidy.metric == "D-ECE")]
        assert sorted(rows.iou) == [0.5, 0.75]
        assert rows["ref_mean"].tolist() == [band["mean"]] * 2
        assert rows["ref_p2.5"].tolist() == [band["p2.5"]] * 2 and rows["ref_p97.5"].tolist() == [band["p97.5"]] * 2
    others = tidy[(tidy.metric != "D-ECE") | (tidy.kind == "single")]  # the single models' files have none
    assert others[["ref_mean", "ref_p2.5", "ref_p97.5"]].isna().all().all()

    cmp = pd.read_csv(out / "lse_vs_rse.csv")
    assert list(cmp.columns)[-6:] == ["ref_mean_lse", "ref_p2.5_lse", "ref_p97.5_lse",
                                      "ref_mean_rse", "ref_p2.5_rse", "ref_p97.5_rse"]
    dece = cmp[(cmp.metric == "D-ECE") & (cmp.iou == 0.5)].iloc[0]
    assert (dece["ref_mean_lse"], dece["ref_p2.5_lse"], dece["ref_p97.5_lse"]) == (0.05, 0.03, 0.08)
    assert (dece["ref_mean_rse"], dece["ref_p2.5_rse"], dece["ref_p97.5_rse"]) == (0.04, 0.02, 0.07)
    assert cmp[cmp.metric == "mAP"][["ref_mean_lse", "ref_p97.5_rse"]].isna().all().all()


def test_significance_draws_replicates_when_every_model_has_them(tmp_path):
    """Two selected LS models, each trained twice. Model a's second run scores 0.1 higher on every resample,
    model b's runs are alike: each two-level difference is the image-only one plus 0 or 0.1 (a's drawn run),
    both occur, and the interval is wider. Without replicates (or for a model trained once) the interval is the
    image-only one, labelled, and nothing is significant."""
    from multirater.selection.pool import build_pool

    rows = rank_models([{"strategy": "ls", "config_id": c, "status": "ok", "best_val_map": v}
                        for c, v in (("aaaa0000", 0.9), ("bbbb0000", 0.8))], top_ls=2, top_rs=1)
    write_selection(tmp_path / "selection.csv", rows)
    pool = build_pool(rows, 2, "preds")
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    rng = np.random.default_rng(0)
    va = rng.uniform(0.4, 0.6, 40)
    vb = va - 0.1 + rng.normal(0, 0.01, 40)  # b below a on every resample
    m = tmp_path / "metrics"
    models = [metrics_file(m / "models/ls/aaaa0000.json", 0.5, 0.5, 0.1, {("mAP", None): va}),
              metrics_file(m / "models/ls/bbbb0000.json", 0.4, 0.4, 0.1, {("mAP", None): vb})]
    second = {p["config_id"]: p["replicates"][1]["model_id"] for p in pool["models"]}
    replicates = [
        metrics_file(m / "r1.json", 0.6, 0.6, 0.1, {("mAP", None): va + 0.1},
                     identity={"strategy": "ls", "config_id": second["aaaa0000"]}),
        metrics_file(m / "r2.json", 0.4, 0.4, 0.1, {("mAP", None): vb},
                     identity={"strategy": "ls", "config_id": second["bbbb0000"]}),
    ]
    for path in (*models, *replicates):  # 40 resamples here
        data = json.loads(open(path).read())
        data["settings"] = {**SETTINGS, "bootstrap": 40}
        open(path, "w").write(json.dumps(data))
    out = tmp_path / "tables"
    write_tables(tmp_path / "selection.csv", models, [], out, pool_path=tmp_path / "pool.json",
                 replicate_files=replicates)
    row = pd.read_csv(out / "significance.csv").iloc[0]
    assert row["interval"] == "members+images" and (row["warning"] != row["warning"])  # NaN: no warning
    image = paired_difference(va, vb)
    assert row["diff_p2.5_images"] == pytest.approx(image["diff_p2.5"]) and row["p_value_images"] == image["p_value"]
    # the two-level differences, per resample, are the image ones plus 0 or 0.1: their mean lies between
    assert image["diff_mean"] < row["diff_mean"] < image["diff_mean"] + 0.1
    assert row["diff_p97.5"] - row["diff_p2.5"] > row["diff_p97.5_images"] - row["diff_p2.5_images"]

    # the pool names replicates whose metrics are missing: one error naming the pool and the model
    with pytest.raises(UserError, match=f"no metrics file for replicate.*{second['bbbb0000']}.*ls/bbbb0000"):
        write_tables(tmp_path / "selection.csv", models, [], tmp_path / "x", pool_path=tmp_path / "pool.json",
                     replicate_files=replicates[:1])
    # no replicates: the image-only interval, labelled, never significant
    write_tables(tmp_path / "selection.csv", models, [], tmp_path / "once")
    once = pd.read_csv(tmp_path / "once" / "significance.csv").iloc[0]
    assert once["interval"] == "images" and not once["significant"] and "was trained once" in once["warning"]
    assert once["diff_p2.5"] == once["diff_p2.5_images"] and once["p_value"] == once["p_value_images"] < 0.05
