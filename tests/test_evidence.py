"""The evidence summary: LSE vs RSE of every cell from its own tables, identified by its own config."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from multirater.cli import main  # noqa: E402
from multirater.core.errors import UserError  # noqa: E402
from multirater.evidence.summary import SUMMARY_COLUMNS, one_rater_share  # noqa: E402

METRICS = ["kind", "size", "strategy", "config_id", "metric", "iou", "value", "mean", "std", "p2.5", "p97.5",
           "ref_mean", "ref_p2.5", "ref_p97.5"]


def write_cell(folder, preset, seed, lse_dece, rse_dece, intra=True):
    """A finished cell by hand: its config, tables (ensembles of 2 and 4, one single model), agreement and
    the RSE_4's fused detections."""
    results = folder / "results"
    for sub in ("tables", "agreement", "ensembles/rse/4", "ensembles/lse/4"):
        (results / sub).mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"dataset": {"synthetic": {"preset": preset, "seed": seed}}}))
    rows, comparison = [], []
    for size in (2, 4):
        for kind, dece in (("lse", lse_dece), ("rse", rse_dece)):
            rows.append([kind, size, kind[:2], "", "mAP", None, 0.3 + size / 100, 0.3, 0.01, 0.29, 0.31,
                         None, None, None])
            rows.append([kind, size, kind[:2], "", "D-ECE", 0.5, dece + size / 100, dece, 0.01, 0, 1,
                         0.02, 0.01, 0.03 + (kind == "rse") / 100])
        comparison.append({"size": size, "metric": "mAP", "iou": None, "diff_mean": 0.0, "diff_p2.5": -0.01,
                           "diff_p97.5": 0.01, "p_value": 0.9, "ref_mean_lse": None})
        comparison.append({"size": size, "metric": "D-ECE", "iou": 0.5, "diff_mean": lse_dece - rse_dece,
                           "diff_p2.5": 0.001 * size, "diff_p97.5": 0.05, "p_value": 0.01 * size,
                           "ref_mean_lse": 0.02, "ref_p2.5_lse": 0.01, "ref_p97.5_lse": 0.03, "ref_mean_rse": 0.02,
                           "ref_p2.5_rse": 0.01, "ref_p97.5_rse": 0.04})
    rows += [["single", 1, "ls", "aaaa0000", "AP50", None, 0.6, 0.6, 0, 0, 0, None, None, None],
             ["single", 1, "rs-rater1", "aaaa0000", "AP50", None, 0.8, 0.8, 0, 0, 0, None, None, None],
             ["single", 1, "ls", "aaaa0000", "mAP", None, 0.3, 0.3, 0, 0, 0, None, None, None],
             ["single", 1, "rs-rater1", "aaaa0000", "mAP", None, 0.5, 0.5, 0, 0, 0, None, None, None]]
    pd.DataFrame(rows, columns=METRICS).to_csv(results / "tables" / "metrics.csv", index=False)
    pd.DataFrame(comparison).to_csv(results / "tables" / "lse_vs_rse.csv", index=False)
    agreement = [{"rater_a": "rater1", "rater_b": "rater2", "iou": 0.5, "f1_mean": 0.6, "f1_std": 0.1,
                  "agreement": "inter"},
                 {"rater_a": "rater1", "rater_b": "rater2", "iou": 0.7, "f1_mean": 0.1, "f1_std": 0.1,
                  "agreement": "inter"}]
    if intra:
        agreement += [{"rater_a": r, "rater_b": r, "iou": 0.5, "f1_mean": f, "f1_std": 0.1, "agreement": "intra"}
                      for r, f in (("rater1", 0.9), ("rater2", 0.8))]
    pd.DataFrame(agreement).to_csv(results / "agreement" / "f1_vs_iou.csv", index=False)
    detections = [{"score": 0.9, "score_std": 0.1, "votes": {"rater1": 2, "rater2": 2}},
                  {"score": 0.5, "score_std": 0.3, "votes": {"rater1": 2, "rater2": 0}},  # one rater's models only
                  {"score": 0.25, "score_std": 0.2, "votes": {"rater2": 1}},  # one rater's models only
                  {"score": 0.1, "score_std": 0.9, "votes": {"rater1": 1}}]  # below 0.2: not counted
    (results / "ensembles" / "rse" / "4" / "fused.json").write_text(json.dumps({"detections": detections}))
    lse = [{"score": 0.8, "score_std": 0.05, "votes": {"ls": 4}}, {"score": 0.3, "score_std": 0.15, "votes": {"ls": 2}}]
    (results / "ensembles" / "lse" / "4" / "fused.json").write_text(json.dumps({"detections": lse}))
    return folder


def test_summary_and_cells_by_hand(tmp_path):
    # folder names say nothing: the cells are known by their config files
    cells = [write_cell(tmp_path / "x", "noisy", 2, 0.10, 0.10, intra=False),
             write_cell(tmp_path / "y", "biased", 0, 0.20, 0.12)]
    out = tmp_path / "evidence"
    assert main(["evidence", "summarize", "--cells", *map(str, cells), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[["preset", "data_seed"]].drop_duplicates().values.tolist() == [["biased", 0], ["noisy", 2]]
    row = summary[(summary.preset == "biased") & (summary["size"] == 4) & (summary.metric == "D-ECE")].iloc[0]
    # test-set values from metrics.csv, their difference, and the paired interval and p from lse_vs_rse.csv
    assert row["lse"] == pytest.approx(0.24) and row["rse"] == pytest.approx(0.16)
    assert row["difference"] == pytest.approx(0.08) and row["iou"] == 0.5
    assert (row["diff_p2.5"], row["diff_p97.5"], row["p_value"]) == (0.004, 0.05, 0.04)
    assert (row["ref_mean_lse"], row["ref_p2.5_lse"], row["ref_p97.5_rse"]) == (0.02, 0.01, 0.04)
    # a table from before the member bootstrap: its interval is labelled image-only, never significant
    assert row["interval"] == "images" and not row["significant"] and "image-only interval only" in row["warning"]
    assert (row["diff_p2.5_images"], row["diff_p97.5_images"], row["p_value_images"]) == (0.004, 0.05, 0.04)
    mAP = summary[(summary.preset == "noisy") & (summary["size"] == 2) & (summary.metric == "mAP")].iloc[0]
    assert mAP["lse"] == pytest.approx(0.32) and mAP["difference"] == 0 and np.isnan(mAP["iou"])
    assert np.isnan(mAP["ref_mean_lse"])

    cells_table = pd.read_csv(out / "cells.csv")
    biased = cells_table[cells_table.preset == "biased"].iloc[0]
    assert biased["inter_f1"] == 0.6 and biased["intra_f1"] == pytest.approx(0.85)
    assert biased["single_models"] == 2 and biased["single_ap50_min"] == 0.6
    assert biased["single_ap50_mean"] == pytest.approx(0.7) and biased["single_map_mean"] == pytest.approx(0.4)
    assert biased["ensemble_size"] == 4 and biased["rse_one_rater_share"] == pytest.approx(2 / 3)
    # members' score spread over the detections scoring >= 0.2: RSE (0.1 + 0.3 + 0.2) / 3, LSE (0.05 + 0.15) / 2
    assert biased["rse_score_std"] == pytest.approx(0.2) and biased["lse_score_std"] == pytest.approx(0.1)
    assert np.isnan(cells_table[cells_table.preset == "noisy"].iloc[0]["intra_f1"])
    for suffix in ("png", "pdf"):
        assert (out / f"fig_evidence.{suffix}").stat().st_size > 0


def test_evidence_figure_draws_each_difference_and_interval(tmp_path):
    from multirater.evidence.figure import evidence_figure
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / "a", "biased", 0, 0.20, 0.12), write_cell(tmp_path / "b", "noisy", 0, 0.1, 0.1)]
    summary_path, *_ = write_summary(cells, tmp_path / "out")
    fig = evidence_figure(pd.read_csv(summary_path))
    ax = fig.axes[0]
    assert ax.get_title() == "D-ECE (IoU = 0.5)"
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert [p.get_label() for p in points] == ["size 2", "size 4"]
    assert points[1].get_ydata() == pytest.approx([0.08, 0.0])  # size 4: biased, noisy
    # per size: the two-level interval, then the image-only one (the same here: tables without a member level)
    intervals = ax.collections[2].get_segments()  # size 4's two-level vertical lines
    assert [(s[0][1], s[1][1]) for s in intervals] == [(0.004, 0.05), (0.004, 0.05)]
    assert [(s[0][1], s[1][1]) for s in ax.collections[3].get_segments()] == [(0.004, 0.05), (0.004, 0.05)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["biased\nseed 0", "noisy\nseed 0"]


def test_one_rater_share_by_hand():
    fused = {"detections": [{"score": 0.3, "votes": {"a": 1, "b": 1}}, {"score": 0.3, "votes": {"a": 0, "b": 3}}]}
    assert one_rater_share(fused) == 0.5
    assert np.isnan(one_rater_share({"detections": [{"score": 0.1, "votes": {"a": 1}}]}))


def test_a_cell_twice_or_unfinished_is_refused(tmp_path):
    from multirater.evidence.summary import write_summary

    a = write_cell(tmp_path / "a", "biased", 0, 0.2, 0.1)
    b = write_cell(tmp_path / "b", "biased", 0, 0.2, 0.1)
    with pytest.raises(UserError, match="is the cell biased seed 0, as"):
        write_summary([a, b], tmp_path / "out")
    (b / "config.yaml").write_text(yaml.safe_dump({"dataset": {"synthetic": {"preset": "noisy", "seed": 0}}}))
    (b / "results" / "tables" / "lse_vs_rse.csv").unlink()
    with pytest.raises(UserError, match="not found: the cell's workflow has not finished"):
        write_summary([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_calibration_tables_of_the_cells_are_gathered(tmp_path):
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / "a", "noisy", 1, 0.1, 0.1), write_cell(tmp_path / "b", "biased", 0, 0.2, 0.1)]
    assert len(write_summary(cells, tmp_path / "none")) == 3  # no cell calibrated: no calibration.csv
    assert not (tmp_path / "none" / "calibration.csv").exists()
    for cell, mae in zip(cells, (3.0, 5.0)):
        pd.DataFrame({"approach": ["rse", "rse"], "method": ["", "logistic"], "count_mae": [mae * 2, mae]}).to_csv(
            cell / "results" / "tables" / "calibration.csv", index=False)
    paths = write_summary(cells, tmp_path / "out")
    table = pd.read_csv(paths[3])
    assert list(table.columns) == ["preset", "data_seed", "approach", "method", "count_mae"]
    # cells in (preset, seed) order, each cell's rows as its own table has them
    assert table[["preset", "data_seed", "count_mae"]].values.tolist() == [
        ["biased", 0, 10.0], ["biased", 0, 5.0], ["noisy", 1, 6.0], ["noisy", 1, 3.0]]
    (cells[0] / "results" / "tables" / "calibration.csv").unlink()
    with pytest.raises(UserError, match="not found: the cell's workflow has not finished"):
        write_summary(cells, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_cells_record_where_each_cell_ran(tmp_path):
    """cells.csv carries each cell's run.json facts (multirater.core.provenance); a cell without one (run
    before workflows wrote it) has them empty."""
    from multirater.core.provenance import PROVENANCE_COLUMNS
    from multirater.evidence.summary import CELL_COLUMNS, write_summary

    cells = [write_cell(tmp_path / "a", "noisy", 1, 0.1, 0.1), write_cell(tmp_path / "b", "biased", 0, 0.2, 0.1)]
    env = {"host": "n1", "commit": "abc", "dirty": False, "cpu": "AMD EPYC", "cpu_capability": "AVX2", "threads": 1,
           "device": "cpu", "gpu": None, "kernels": {"ATEN_CPU_CAPABILITY": "avx2"},
           "versions": {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6", "multirater": "0.1.0"}}
    (cells[1] / "results" / "run.json").write_text(json.dumps({
        "format": "multirater-run", "commit": "abc", "dirty": False,
        "workflow": {"versions": {"snakemake": "9.27.1"}}, "mixed": False,
        "trainings": [{"environment": env, "hosts": ["n1"], "jobs": ["ls/x"]}]}))
    table = pd.read_csv(write_summary(cells, tmp_path / "out")[1])
    assert list(table.columns) == CELL_COLUMNS and CELL_COLUMNS[-len(PROVENANCE_COLUMNS):] == PROVENANCE_COLUMNS
    biased = table[table.preset == "biased"].iloc[0]
    assert (biased["commit"], biased["snakemake"], biased["torch"], biased["cpu_capability"]) == (
        "abc", "9.27.1", "2.14.1", "AVX2")
    assert biased["kernels"] == "ATEN_CPU_CAPABILITY=avx2" and not biased["mixed"]
    assert table[table.preset == "noisy"].iloc[0][PROVENANCE_COLUMNS].isna().all()


def two_level_table(cell, rows):
    """Give a cell's lse_vs_rse.csv the two-level columns: ``rows`` maps (size, metric) to (interval, p2.5,
    p97.5, significant) of the two-level result; the image-only columns are narrower."""
    path = cell / "results" / "tables" / "lse_vs_rse.csv"
    table = pd.read_csv(path)
    for column in ("significant", "interval", "diff_p2.5_images", "diff_p97.5_images", "p_value_images", "warning"):
        table[column] = None
    for i, r in table.iterrows():
        interval, low, high, significant = rows[(int(r["size"]), r["metric"])]
        table.loc[i, ["diff_p2.5_images", "diff_p97.5_images", "p_value_images"]] = [low / 2, high / 2, 0.02]
        table.loc[i, ["interval", "diff_p2.5", "diff_p97.5", "significant"]] = [interval, low, high, significant]
        if interval == "images":
            table.loc[i, "warning"] = "LSE_4 takes all 4 selected ls models"
    table.to_csv(path, index=False)


def test_directions_hold_only_across_every_seed(tmp_path):
    """directions.csv: a direction is a finding only when the two-level interval gives it in every seed."""
    from multirater.evidence.summary import DIRECTION_COLUMNS, write_summary

    cells = []
    for seed in (0, 1, 2):
        cell = write_cell(tmp_path / f"c{seed}", "biased", seed, 0.2, 0.1)
        two = "members+images"
        two_level_table(cell, {
            # D-ECE at size 2: above 0 (RSE better calibrated) in every seed
            (2, "D-ECE"): (two, 0.01, 0.05, True),
            # D-ECE at size 4: no member variation in seed 2, so never all three
            (4, "D-ECE"): ("images", 0.01, 0.05, False) if seed == 2 else (two, 0.01, 0.05, True),
            # mAP at size 2: LSE ahead in seed 0 only; at size 4 never significant
            (2, "mAP"): (two, 0.01, 0.02, True) if seed == 0 else (two, -0.01, 0.02, False),
            (4, "mAP"): (two, -0.01, 0.02, False),
        })
        cells.append(cell)
    paths = write_summary(cells, tmp_path / "out")
    summary = pd.read_csv(paths[0])
    row = summary[(summary.data_seed == 2) & (summary["size"] == 4) & (summary.metric == "D-ECE")].iloc[0]
    assert row["interval"] == "images" and not row["significant"] and row["warning"].startswith("LSE_4 takes all")
    assert (row["diff_p2.5"], row["diff_p2.5_images"]) == (0.01, 0.005)
    table = pd.read_csv(paths[2])
    assert list(table.columns) == DIRECTION_COLUMNS
    finding = {(r["size"], r["metric"]): r for _, r in table.iterrows()}
    assert finding[(2, "D-ECE")]["finding"] == "RSE better in 3 of 3 seeds"
    assert (finding[(2, "D-ECE")]["rse_better"], finding[(2, "D-ECE")]["two_level"]) == (3, 3)
    assert finding[(4, "D-ECE")]["finding"] == ("no direction in every seed (LSE better in 0, RSE better in 2, "
                                                "neither in 1 of 3; 1 without a two-level interval)")
    assert finding[(2, "mAP")]["finding"] == "no direction in every seed (LSE better in 1, RSE better in 0, neither in 2 of 3)"
    assert finding[(4, "mAP")]["neither"] == 3
