"""The report front page's text, from hand-made tables: LSE vs RSE per size with every interval the table has
(one or two levels), the best single model by validation mAP, the calibration headline, the sentence on single
runs, and where the run ran (one environment or mixed)."""

from __future__ import annotations

import pandas as pd
import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.core.kernels import REPRODUCIBLE_KERNELS
from multirater.io.run_file import write_run
from multirater.report.about import about_text
from multirater.report.findings import SINGLE_RUN, comparison_table, intervals
from multirater.selection.ranking import write_selection

METRICS = ["kind", "size", "strategy", "config_id", "metric", "iou", "value"]


def write_tables(folder, two_level=False):
    """metrics.csv, lse_vs_rse.csv (sizes 2 and 4) and selection.csv by hand."""
    metrics, comparison = [], []
    for size in (2, 4):
        for kind, dece, m_ap in (("lse", 0.048, 0.31), ("rse", 0.056, 0.30)):
            metrics += [[kind, size, kind[:2], "", "D-ECE", 0.5, dece + size / 1000],
                        [kind, size, kind[:2], "", "D-ECE", 0.75, dece * 2],
                        [kind, size, kind[:2], "", "mAP", None, m_ap]]
        for metric, iou in (("mAP", None), ("AP50", None), ("D-ECE", 0.5), ("D-ECE", 0.75)):
            row = {"size": size, "metric": metric, "iou": iou, "diff_p2.5": -0.012 * size, "diff_p97.5": -0.004,
                   "p_value": 0.0198}
            if two_level:
                row.update({"interval": "members+images", "diff_p2.5_images": -0.011, "diff_p97.5_images": -0.005,
                            "p_value_images": 0.0099})
            comparison.append(row)
    metrics += [["single", 1, "ls", "aaaa0000", "mAP", None, 0.25], ["single", 1, "ls", "aaaa0000", "D-ECE", 0.5, 0.07],
                ["single", 1, "rs-rater1", "bbbb0000", "mAP", None, 0.21],
                ["single", 1, "rs-rater1", "bbbb0000", "D-ECE", 0.5, 0.09]]
    pd.DataFrame([r + [None] * (7 - len(r)) for r in metrics], columns=METRICS).to_csv(folder / "metrics.csv",
                                                                                      index=False)
    pd.DataFrame(comparison).to_csv(folder / "lse_vs_rse.csv", index=False)
    # the failed model has the highest number: only ok models count
    write_selection(folder / "selection.csv", [
        {"strategy": "ls", "config_id": "aaaa0000", "status": "ok", "val_map": 0.40, "rank": 1, "selected": True},
        {"strategy": "rs-rater1", "config_id": "bbbb0000", "status": "ok", "val_map": 0.45, "rank": 1,
         "selected": True},
        {"strategy": "rs-rater2", "config_id": "cccc0000", "status": "failed", "val_map": 0.9, "rank": None,
         "selected": False}])


def rows_of(rst: str) -> list[list[str]]:
    """The cells of an rst list-table, row by row."""
    rows = []
    for line in rst.splitlines():
        if line.startswith("   * - "):
            rows.append([line[7:]])
        elif line.startswith("     - "):
            rows[-1].append(line[7:])
    return rows


def test_comparison_per_size_with_the_plain_interval(tmp_path):
    write_tables(tmp_path)
    rows = rows_of(comparison_table(tmp_path / "lse_vs_rse.csv", tmp_path / "metrics.csv"))
    assert rows[0] == ["size", "metric", "LSE", "RSE", "LSE - RSE", "95 % interval (test images)",
                       "p (test images)"]
    # per size: D-ECE at each IoU, then mAP (AP50 is left to the table); values from metrics.csv by hand
    assert [r[:2] for r in rows[1:]] == [["2", "D-ECE\\@0.5"], ["2", "D-ECE\\@0.75"], ["2", "mAP"],
                                         ["4", "D-ECE\\@0.5"], ["4", "D-ECE\\@0.75"], ["4", "mAP"]]
    assert rows[4][2:] == ["0.052", "0.060", "-0.008", "[-0.048, -0.004]", "0.02"]  # 0.048+0.004, 0.056+0.004
    assert rows[3][2:] == ["0.310", "0.300", "0.010", "[-0.024, -0.004]", "0.02"]


def test_a_two_level_interval_is_shown_with_both_names(tmp_path):
    write_tables(tmp_path, two_level=True)
    table = pd.read_csv(tmp_path / "lse_vs_rse.csv")
    assert [i[0] for i in intervals(table)] == ["members+images", "images"]
    rows = rows_of(comparison_table(tmp_path / "lse_vs_rse.csv", tmp_path / "metrics.csv"))
    assert rows[0][5:] == ["95 % interval (members+images)", "p (members+images)", "95 % interval (images)",
                           "p (images)"]
    assert rows[1][5:] == ["[-0.024, -0.004]", "0.02", "[-0.011, -0.005]", "0.0099"]


def test_the_front_page_text_from_the_command(tmp_path):
    write_tables(tmp_path)
    pd.DataFrame({"approach": ["rse", "rse", "lse"], "method": ["uncalibrated", "logistic", "uncalibrated"],
                  "target": [None, "soft", None], "D-ECE@0.5": [0.056, 0.021, 0.05],
                  "D-ECE@0.5_change": [None, -0.035, None], "D-ECE@0.5_change_p": [None, 0.0198, None]}
                 ).to_csv(tmp_path / "calibration.csv", index=False)
    env = {"host": "node7", "commit": "0123456789abcdef", "dirty": False, "cpu": "Intel Xeon", "cpu_capability": "AVX2",
           "threads": 4, "device": "cuda", "gpu": "NVIDIA H100", "kernels": dict(REPRODUCIBLE_KERNELS),
           "versions": {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6", "multirater": "0.1.0"}}
    write_run(tmp_path / "run.json", {
        "format": "multirater-run", "commit": "0123456789abcdef", "dirty": True,
        "workflow": {"host": "login1", "versions": {"snakemake": "9.27.1"}},
        "trainings": [{"environment": env, "hosts": ["node7"], "jobs": ["ls/aaaa0000", "pretrain"]}], "mixed": False})
    out = tmp_path / "findings.rst"
    assert main(["findings", "--comparison", str(tmp_path / "lse_vs_rse.csv"), "--metrics",
                 str(tmp_path / "metrics.csv"), "--selection", str(tmp_path / "selection.csv"), "--calibration",
                 str(tmp_path / "calibration.csv"), "--headline", "rse", "logistic-soft", "--run",
                 str(tmp_path / "run.json"), "--out", str(out)]) == 0
    text = " ".join(out.read_text().split())
    # the best ok model by validation mAP (rs-rater1, 0.45; the failed model's 0.9 does not count)
    assert ("``rs-rater1/bbbb0000``, validation mAP 0.450; on the test set mAP 0.210, D-ECE\\@0.5 0.090" in text)
    assert ("D-ECE\\@0.5 0.056 uncalibrated, 0.021 calibrated (change -0.035, p = 0.02)" in text)
    assert " ".join(SINGLE_RUN.split()) in text
    assert "commit ``0123456789`` with uncommitted changes" in text and "snakemake 9.27.1" in text
    assert ("All 2 training(s) ran in one environment (host ``node7``): CPU Intel Xeon, torch dispatching to AVX2, "
            "4 thread(s), device cuda (NVIDIA H100)") in text
    assert "CPU kernels pinned to AVX2" in text


def test_a_mixed_run_says_so_and_names_each_environment():
    def env(capability, kernels):
        return {"cpu": "AMD EPYC", "cpu_capability": capability, "threads": 1, "device": "cpu", "gpu": None,
                "kernels": kernels, "commit": None, "versions": {"torch": "2.14.1", "torchvision": "0.29.1",
                                                                 "numpy": "2.4.6", "multirater": "0.1.0"}}
    record = {"commit": None, "dirty": None, "workflow": {"host": "h", "versions": {"snakemake": "9"}}, "mixed": True,
              "trainings": [{"environment": env("AVX512", {}), "hosts": ["a"], "jobs": [f"ls/{i}" for i in range(8)]},
                            {"environment": env("AVX2", {"ATEN_CPU_CAPABILITY": "avx2"}), "hosts": ["b"],
                             "jobs": ["pretrain"]},
                            {"environment": None, "hosts": [], "jobs": ["rs-a/x"]}]}
    text = " ".join(about_text(record).split())
    assert "not a git checkout" in text
    assert "**Mixed run:** the 10 trainings ran in 3 different environments" in text
    assert "- 8 training(s) (``ls/0``, ``ls/1``, ``ls/2``, ``ls/3``, ``ls/4``, ``ls/5`` and 2 more): host ``a``" in text
    assert "CPU kernels the machine's own" in text and "CPU kernels set by ``ATEN_CPU_CAPABILITY=avx2``" in text
    assert "- 1 training(s) (``rs-a/x``): no environment recorded" in text


def test_a_table_without_intervals_is_one_error(tmp_path):
    write_tables(tmp_path)
    table = pd.read_csv(tmp_path / "lse_vs_rse.csv").drop(columns=["diff_p97.5"])
    table.to_csv(tmp_path / "lse_vs_rse.csv", index=False)
    with pytest.raises(UserError, match="lse_vs_rse.csv: has no interval columns"):
        comparison_table(tmp_path / "lse_vs_rse.csv", tmp_path / "metrics.csv")
