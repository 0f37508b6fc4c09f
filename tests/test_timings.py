"""`multirater timings`: per rule, from benchmark files with known numbers (Snakemake's own header, plain and
extended), hand-computed; and the one reader of benchmark files those numbers pass through."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.io.benchmarks import read_benchmark
from multirater.report.timings import rule_timings

PLAIN = ["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"]
EXTENDED = [*PLAIN, "jobid", "rule_name", "wildcards", "params", "threads", "cpu_usage", "resources", "input_size_mb"]


def bench(path: Path, rows: list[tuple], rule: str | None = None) -> None:
    """A benchmark file as Snakemake writes it: rows of (seconds, max_rss MB, cpu seconds); extended with a rule."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(EXTENDED if rule else PLAIN)
        for seconds, rss, cpu in rows:
            row = [f"{seconds:.2f}", "0:00:00", rss, "1.0", "1.0", "1.0", "0.00", "0.00", "50.00", cpu]
            if rule:
                row += ["3", rule, "{'strategy': 'ls'}", "{}", "1", "0.00", "{'tmpdir': '/tmp'}", "{}"]
            writer.writerow(row)


@pytest.fixture
def benchmarks(tmp_path: Path) -> Path:
    folder = tmp_path / "results" / "benchmarks"
    bench(folder / "train" / "ls" / "aaaa1111.tsv", [(100.0, "512.5", "95.0")], rule="train")
    bench(folder / "train" / "rs-r1" / "bbbb2222.tsv", [(20.0, "300.0", "18.0"), (40.0, "700.25", "39.0")],
          rule="train")  # a second run of the same job (a retry): both count, as one job
    bench(folder / "train" / "rs-r2" / "cccc3333.tsv", [(30.0, "NA", "NA")], rule="train")  # too short to sample
    bench(folder / "predict" / "test" / "ls" / "aaaa1111.tsv", [(5.5, "200.0", "5.0")], rule="predict")
    bench(folder / "evaluate" / "models" / "ls" / "aaaa1111.tsv", [(2.0, "90.0", "1.5")], rule="evaluate_detections")
    bench(folder / "evaluate" / "ensembles" / "rse" / "2.tsv", [(4.0, "110.0", "3.5")], rule="evaluate_detections")
    bench(folder / "pretrain.tsv", [(250.0, "800.0", "240.0")])  # plain format: no rule_name
    bench(folder / "figures" / "fig1.png.tsv", [(1.0, "150.0", "0.9")])
    bench(folder / "figures" / "fig1.pdf.tsv", [(3.0, "160.0", "2.0")])
    return tmp_path / "results"


def test_timings_per_rule_hand_computed(benchmarks):
    rows = rule_timings(benchmarks / "benchmarks")
    # sorted by total: pretrain 250, train 100 + (20 + 40) + 30 = 190, predict 5.5, evaluate 6, figures 4
    assert [r["rule"] for r in rows] == ["pretrain*", "train", "evaluate_detections", "predict", "figures*"]
    by_rule = {r["rule"]: r for r in rows}
    train = by_rule["train"]
    assert (train["jobs"], train["total_s"], train["max_s"]) == (3, 190.0, 100.0)
    assert train["mean_s"] == pytest.approx(190.0 / 3)
    assert train["cpu_s"] == pytest.approx(95.0 + 18.0 + 39.0)  # the job without process data adds nothing
    assert train["max_rss_mb"] == 700.25
    evaluate = by_rule["evaluate_detections"]
    assert (evaluate["jobs"], evaluate["total_s"], evaluate["mean_s"], evaluate["max_s"]) == (2, 6.0, 3.0, 4.0)
    assert (evaluate["cpu_s"], evaluate["max_rss_mb"]) == (5.0, 110.0)
    # files without rule_name: grouped by their first folder (or their own name at the top), marked
    figures = by_rule["figures*"]
    assert (figures["jobs"], figures["total_s"], figures["max_s"], figures["max_rss_mb"]) == (2, 4.0, 3.0, 160.0)
    assert (by_rule["pretrain*"]["jobs"], by_rule["pretrain*"]["cpu_s"]) == (1, 240.0)


def test_timings_command_prints_and_writes_the_table(benchmarks, tmp_path, capsys):
    out = tmp_path / "timings.csv"
    assert main(["timings", "--results", str(benchmarks), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["rule", "jobs", "total_s", "mean_s", "max_s", "cpu_s", "max_rss_mb"]
    assert printed[2].split() == ["pretrain*", "1", "250.0", "250.0", "250.0", "240.0", "800.0"]
    assert printed[3].split() == ["train", "3", "190.0", "63.3", "100.0", "152.0", "700.2"]
    total = next(line for line in printed if line.startswith("total"))
    assert total.split() == ["total", "9", "455.5", "-", "-", "404.9", "-"]
    assert any("no rule_name" in line for line in printed)
    with out.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["rule"] for r in table] == ["pretrain*", "train", "evaluate_detections", "predict", "figures*"]
    assert float(table[1]["total_s"]) == 190.0 and table[1]["jobs"] == "3"


def test_timings_of_nothing_and_of_a_broken_file(tmp_path, capsys):
    assert main(["timings", "--results", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/benchmarks: no such folder" in capsys.readouterr().err
    broken = tmp_path / "results" / "benchmarks" / "train" / "x.tsv"
    broken.parent.mkdir(parents=True)
    broken.write_text("s\th:m:s\nslow\t0:00:01\n")
    assert main(["timings", "--results", str(tmp_path / "results")]) == 2
    assert f"{broken}: row 1: not a Snakemake benchmark file" in capsys.readouterr().err
    mixed = tmp_path / "mixed.tsv"
    bench(mixed, [(1.0, "1", "1")], rule="train")
    with mixed.open("a") as handle:  # a row of another rule in the same file cannot be one job
        handle.write(mixed.read_text().splitlines()[1].replace("\ttrain\t", "\tpredict\t") + "\n")
    with pytest.raises(UserError, match="rows of several rules"):
        rule_timings(tmp_path)


def test_benchmark_reader_reads_snakemakes_columns(tmp_path):
    path = tmp_path / "b.tsv"
    bench(path, [(12.5, "NA", "NA"), (3.0, "64.0", "2.75")], rule="fuse")
    runs = read_benchmark(path)
    assert [(r.seconds, r.max_rss_mb, r.cpu_seconds, r.rule) for r in runs] == [
        (12.5, None, None, "fuse"), (3.0, 64.0, 2.75, "fuse")]
    bench(path, [(1.0, "2.0", "0.5")])
    assert read_benchmark(path)[0].rule is None


def test_timings_of_a_real_run_name_every_rule(demo_shaped_run, capsys):
    """The shared reduced demo, run with profiles/local: every benchmark file names its rule, and the jobs per
    rule are those the config implies (2 configurations x 3 strategies, test predictions only, LSE_2 and
    RSE_2)."""
    from test_workflow import CONFIG

    assert main(["timings", "--results", str(demo_shaped_run.work / "results")]) == 0
    printed = capsys.readouterr().out
    assert "no rule_name" not in printed
    rows = {r["rule"]: r for r in rule_timings(demo_shaped_run.work / "results" / "benchmarks")}
    models = len(CONFIG["sweep"]["grid"]["lr"]) * 3
    assert (rows["train"]["jobs"], rows["predict"]["jobs"], rows["pretrain"]["jobs"]) == (models, models, 1)
    assert rows["fuse"]["jobs"] == 2 and rows["evaluate_detections"]["jobs"] == models + 2
    assert all(r["total_s"] > 0 for r in rows.values() if r["rule"] in ("train", "pretrain"))
    assert list(rows) == sorted(rows, key=lambda name: -rows[name]["total_s"])
