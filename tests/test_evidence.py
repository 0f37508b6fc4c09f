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


LEARNED = {"n_rater1_only": 5, "n_rater2_only": 4, "n_all_raters": 20, "score_ls_on_rater1_only": 0.5,
           "score_rs-rater1_on_rater1_only": 0.7, "score_rs-rater2_on_rater1_only": 0.2, "ls_score_one_rater": 0.55}


def write_cell(folder, preset, seed, lse_dece, rse_dece, intra=True, bias=None, arm=None, auc=0.9):
    """A finished cell by hand: its config, tables (ensembles of 2 and 4, one single model), agreement, the
    learned-bias table and the RSE_4's fused detections."""
    results = folder / "results"
    for sub in ("tables", "agreement", "ensembles/rse/4", "ensembles/lse/4"):
        (results / sub).mkdir(parents=True)
    config = {"dataset": {"synthetic": {"preset": preset, "seed": seed, **({"bias": bias} if bias is not None else {})}},
              **({"evidence": {"arm": arm}} if arm else {})}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rows, comparison = [], []
    for size in (2, 4):
        for kind, dece in (("lse", lse_dece), ("rse", rse_dece)):
            rows.append([kind, size, kind[:2], "", "mAP", None, 0.3 + size / 100, 0.3, 0.01, 0.29, 0.31,
                         None, None, None])
            rows.append([kind, size, kind[:2], "", "D-ECE", 0.5, dece + size / 100, dece, 0.01, 0, 1,
                         0.02, 0.01, 0.03 + (kind == "rse") / 100])
            rows.append([kind, size, kind[:2], "", "D-ECE-soft", 0.5, dece / 2, dece, 0.01, 0, 1,
                         None, None, None])
        comparison.append({"size": size, "metric": "mAP", "iou": None, "diff_mean": 0.0, "diff_p2.5": -0.01,
                           "diff_p97.5": 0.01, "p_value": 0.9, "significant": False, "ref_mean_lse": None})
        comparison.append({"size": size, "metric": "D-ECE", "iou": 0.5, "diff_mean": lse_dece - rse_dece,
                           "diff_p2.5": 0.001 * size, "diff_p97.5": 0.05, "p_value": 0.01 * size,
                           "significant": True, "ref_mean_lse": 0.02, "ref_p2.5_lse": 0.01, "ref_p97.5_lse": 0.03,
                           "ref_mean_rse": 0.02, "ref_p2.5_rse": 0.01, "ref_p97.5_rse": 0.04})
        comparison.append({"size": size, "metric": "D-ECE-soft", "iou": 0.5, "diff_mean": (lse_dece - rse_dece) / 2,
                           "diff_p2.5": -0.01, "diff_p97.5": 0.02, "p_value": 0.3, "significant": False})
    rows += [["single", 1, "ls", "aaaa0000", "AP50", None, 0.6, 0.6, 0, 0, 0, None, None, None],
             ["single", 1, "rs-rater1", "aaaa0000", "AP50", None, 0.8, 0.8, 0, 0, 0, None, None, None],
             ["single", 1, "ls", "aaaa0000", "mAP", None, 0.3, 0.3, 0, 0, 0, None, None, None],
             ["single", 1, "rs-rater1", "aaaa0000", "mAP", None, 0.5, 0.5, 0, 0, 0, None, None, None]]
    pd.DataFrame(rows, columns=METRICS).to_csv(results / "tables" / "metrics.csv", index=False)
    pd.DataFrame(comparison).to_csv(results / "tables" / "lse_vs_rse.csv", index=False)
    pd.DataFrame([{**LEARNED, "learned_bias_auc": auc}]).to_csv(results / "tables" / "learned_bias.csv", index=False)
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
    assert row["arm"] != row["arm"] and np.isnan(row["bias"])  # NaN: no arm, no bias
    soft = summary[(summary.preset == "biased") & (summary["size"] == 4) & (summary.metric == "D-ECE-soft")].iloc[0]
    assert soft["lse"] == pytest.approx(0.10) and soft["rse"] == pytest.approx(0.06) and not soft["significant"]
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
    assert biased["ensemble_size"] == 4 and biased["rse_share_boxed_by_one_rater_only"] == pytest.approx(2 / 3)
    # the learned-bias diagnostic, as the cell's table has it
    assert biased["learned_bias_auc"] == 0.9 and biased["score_rs-rater1_on_rater1_only"] == 0.7
    assert biased["n_rater2_only"] == 4 and biased["ls_score_one_rater"] == 0.55
    # members' score spread over the detections scoring >= 0.2: RSE (0.1 + 0.3 + 0.2) / 3, LSE (0.05 + 0.15) / 2
    assert biased["rse_score_std"] == pytest.approx(0.2) and biased["lse_score_std"] == pytest.approx(0.1)
    assert np.isnan(cells_table[cells_table.preset == "noisy"].iloc[0]["intra_f1"])
    for stem in ("fig_evidence", "fig_learned_bias"):
        for suffix in ("png", "pdf"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 0
    ranges = pd.read_csv(out / "ranges.csv")
    assert set(ranges["quantity"]) == {"LSE - RSE", "learned_bias_auc", "ls_score_one_rater", "inter_f1",
                                       "intra_f1", "single_ap50_mean"}
    assert pd.read_csv(out / "runs.csv").empty  # no cell has a run.json here


def test_evidence_figure_draws_each_difference_and_interval(tmp_path):
    from multirater.evidence.figure import evidence_figure
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / "a", "biased", 0, 0.20, 0.12), write_cell(tmp_path / "b", "noisy", 0, 0.1, 0.1)]
    summary_path = write_summary(cells, tmp_path / "out")[0]
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
    assert len(write_summary(cells, tmp_path / "none")) == 5  # no cell calibrated: no calibration.csv
    assert not (tmp_path / "none" / "calibration.csv").exists()
    for cell, mae in zip(cells, (3.0, 5.0)):
        pd.DataFrame({"approach": ["rse", "rse"], "method": ["", "logistic"], "count_mae": [mae * 2, mae]}).to_csv(
            cell / "results" / "tables" / "calibration.csv", index=False)
    paths = write_summary(cells, tmp_path / "out")
    table = pd.read_csv(paths[5])
    assert list(table.columns) == ["arm", "preset", "bias", "data_seed", "approach", "method", "count_mae"]
    # cells in (preset, seed) order, each cell's rows as its own table has them
    assert table[["preset", "data_seed", "count_mae"]].values.tolist() == [
        ["biased", 0, 10.0], ["biased", 0, 5.0], ["noisy", 1, 6.0], ["noisy", 1, 3.0]]
    (cells[0] / "results" / "tables" / "calibration.csv").unlink()
    with pytest.raises(UserError, match="not found: the cell's workflow has not finished"):
        write_summary(cells, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_ranges_over_seeds_by_hand(tmp_path):
    """Two seeds of one bias: the range of LSE - RSE, how often the RSE was better and how often significantly
    (D-ECE: lower is better; mAP: higher), and the diagnostics' ranges."""
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / "a", "graded", 0, 0.20, 0.12, bias=0.5, arm="bias", auc=0.6),
             write_cell(tmp_path / "b", "graded", 1, 0.10, 0.13, bias=0.5, arm="bias", auc=0.8),
             write_cell(tmp_path / "c", "graded", 0, 0.10, 0.10, bias=1.0, arm="bias")]
    # the bias-0.5 cells' D-ECE differences are significant with the two-level interval (members and images)
    for cell, dece_interval in ((cells[0], (0.01, 0.1)), (cells[1], (-0.05, -0.01))):
        two_level_table(cell, {**{(size, "D-ECE"): ("members+images", *dece_interval, True) for size in (2, 4)},
                               **{(size, metric): ("members+images", -0.01, 0.02, False)
                                  for size in (2, 4) for metric in ("mAP", "D-ECE-soft")}})
    paths = write_summary(cells, tmp_path / "out")
    ranges = pd.read_csv(paths[3])
    half = ranges[ranges.bias == 0.5]
    dece = half[(half.quantity == "LSE - RSE") & (half.metric == "D-ECE") & (half["size"] == 4)].iloc[0]
    # seed 0: 0.24 - 0.16 = +0.08 (RSE better, significant), seed 1: 0.14 - 0.17 = -0.03 (LSE better, significant)
    assert (dece["n_seeds"], dece["min"], dece["max"]) == (2, pytest.approx(-0.03), pytest.approx(0.08))
    assert (dece["n_rse_better"], dece["n_rse_better_significant"], dece["n_lse_better_significant"]) == (1, 1, 1)
    assert dece["text"] == ("-0.0300 to +0.0800; RSE better in 1 of 2 seeds (significantly in 1), "
                            "LSE significantly better in 1")
    mAP = half[(half.quantity == "LSE - RSE") & (half.metric == "mAP") & (half["size"] == 2)].iloc[0]
    assert mAP["n_rse_better"] == 0 and mAP["max"] == 0  # equal mAP: neither is better
    auc = half[half.quantity == "learned_bias_auc"].iloc[0]
    assert (auc["min"], auc["max"], auc["text"]) == (0.6, 0.8, "0.600 to 0.800 over 2 of 2 seeds")
    assert ranges[(ranges.bias == 1.0) & (ranges.quantity == "learned_bias_auc")].iloc[0]["n_seeds"] == 1
    # directions.csv: the seeds of each bias on their own
    directions = pd.read_csv(paths[2])
    dece4 = directions[(directions.metric == "D-ECE") & (directions["size"] == 4)].set_index("bias")
    assert (dece4.loc[0.5, "seeds"], dece4.loc[0.5, "lse_better"], dece4.loc[0.5, "rse_better"]) == (2, 1, 1)
    assert (dece4.loc[1.0, "seeds"], dece4.loc[1.0, "two_level"]) == (1, 0) and (dece4["arm"] == "bias").all()


def test_arm_figure_plots_each_seed_against_the_bias(tmp_path):
    from multirater.evidence.arm_figure import arm_figure
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / f"{b}-{s}", "graded", s, 0.2 - b / 10, 0.12, bias=b, arm="bias", auc=0.5 + b / 2)
             for b in (0.0, 1.0) for s in (0, 1)]
    paths = write_summary(cells, tmp_path / "out")
    fig = arm_figure(pd.read_csv(paths[0]), pd.read_csv(paths[1]), "bias")
    consensus, soft, auc_ax = fig.axes[0], fig.axes[1], fig.axes[2]
    assert consensus.get_title() == "D-ECE vs consensus (IoU 0.5)" and soft.get_title().startswith("D-ECE-soft")
    seed0 = [line for line in consensus.lines if line.get_label() == "seed 0"][0]
    # the largest ensembles (4): LSE 0.24 - b/10, RSE 0.16; seed 0 a little left of its bias
    assert seed0.get_xdata() == pytest.approx([-0.015, 0.985])
    assert seed0.get_ydata() == pytest.approx([0.08, -0.02])
    points = [line for line in auc_ax.lines if line.get_marker() == "o"]
    assert [list(p.get_ydata()) for p in points] == [[0.5, 1.0], [0.5, 1.0]]
    assert "no D-ECE-soft at IoU 0.75" in [t.get_text() for t in fig.axes[4].texts]


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
    # the cell's facts, its learned-bias diagnostic (as its table has it), then where it ran
    assert list(table.columns) == [*CELL_COLUMNS, *LEARNED, "learned_bias_auc", *PROVENANCE_COLUMNS]
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
            # D-ECE-soft: never significant
            **{(size, "D-ECE-soft"): (two, -0.01, 0.02, False) for size in (2, 4)},
        })
        cells.append(cell)
    paths = write_summary(cells, tmp_path / "out")
    summary = pd.read_csv(paths[0])
    row = summary[(summary.data_seed == 2) & (summary["size"] == 4) & (summary.metric == "D-ECE")].iloc[0]
    assert row["interval"] == "images" and not row["significant"] and row["warning"].startswith("LSE_4 takes all")
    assert (row["diff_p2.5"], row["diff_p2.5_images"]) == (0.01, 0.005)
    table = pd.read_csv(paths[2])
    assert list(table.columns) == DIRECTION_COLUMNS
    assert (table["preset"] == "biased").all() and table["bias"].isna().all()  # one setting: no arm, no bias
    finding = {(r["size"], r["metric"]): r for _, r in table.iterrows()}
    assert finding[(2, "D-ECE")]["finding"] == "RSE better in 3 of 3 seeds"
    assert (finding[(2, "D-ECE")]["rse_better"], finding[(2, "D-ECE")]["two_level"]) == (3, 3)
    assert finding[(4, "D-ECE")]["finding"] == ("no direction in every seed (LSE better in 0, RSE better in 2, "
                                                "neither in 1 of 3; 1 without a two-level interval)")
    assert finding[(2, "mAP")]["finding"] == "no direction in every seed (LSE better in 1, RSE better in 0, neither in 2 of 3)"
    assert finding[(4, "mAP")]["neither"] == 3


def test_the_tick_labels_of_many_cells_do_not_overlap(tmp_path):
    """A study's 14 cells along x (make mechanism): every tick label of both summary figures clear of its
    neighbours once drawn; a few cells keep their stacked labels."""
    from multirater.evidence.arm_figure import learned_bias_figure
    from multirater.evidence.figure import evidence_figure
    from multirater.evidence.summary import write_summary

    cells = [write_cell(tmp_path / f"{arm}-{b}-{s}", "graded", s, 0.2, 0.12, bias=b, arm=arm)
             for arm, biases in (("bias", (0.0, 0.25, 0.5, 0.75, 1.0)), ("paper", (0.0, 1.0)))
             for b in biases for s in (0, 1)]
    paths = write_summary(cells, tmp_path / "out")
    for fig in (evidence_figure(pd.read_csv(paths[0])), learned_bias_figure(pd.read_csv(paths[1]))):
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = ax.get_xticklabels()
            boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
            assert len(boxes) == 14 and all(left.x1 <= right.x0 for left, right in zip(boxes, boxes[1:])), \
                ax.get_title()
            assert labels[0].get_text() == "bias bias 0 seed 0"
    few = evidence_figure(pd.read_csv(write_summary(cells[:2], tmp_path / "few")[0]))
    assert [t.get_text() for t in few.axes[0].get_xticklabels()] == ["bias\nbias 0\nseed 0", "bias\nbias 0\nseed 1"]
