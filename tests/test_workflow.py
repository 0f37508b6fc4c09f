"""The workflow, run for real with the local profile on a reduced demo (synthetic data, the tiny
detector, 2 configurations per strategy, 2 epochs) in a temporary folder.

Checks every expected output, that a rerun has nothing to do, that deleting the checkpoints and the
figures regenerates the figures without any training or prediction job, that evaluation settings
never retrain, and that adding a configuration runs only that configuration's jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RATERS = ["rater1", "rater2"]
STRATEGIES = ["ls", "rs-rater1", "rs-rater2"]
TRAINING_JOBS = {"pretrain", "train", "predict"}

CONFIG = {
    "dataset": {"manifest": None, "synthetic": {"seed": 3, "images": 16, "consensus_images": 5, "raters": 2,
                                                "size": 96}},
    "splits": {"val_fraction": 0.25, "seed": 1},
    "model": {"name": "tiny", "min_size": 96, "max_size": 96, "detections_per_img": 50},
    "pretrain": {"epochs": 1, "batch_size": 4},
    "training": {"epochs": 2, "patience": 2, "batch_size": 4, "augment": False},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
    "evaluation": {"iou": [0.5, 0.75], "bins": 10, "bootstrap": 20, "seed": 0},
    # val too (the schema's default): a copy of this run that turns calibration on then predicts nothing again
    "prediction": {"splits": ["val", "test"], "batch_size": 4},
    "resources": {"device": "cpu"},
}

def run_snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--profile", str(REPO / "profiles" / "local"), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


def snakemake(workdir: Path, config: Path, *args: str) -> str:
    proc = run_snakemake(workdir, config, *args)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> number of jobs."""
    if "Nothing to be done" in output:
        return {}
    lines = output.split("Job stats:", 1)[1].splitlines()
    jobs = {}
    for line in lines[3:]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def write_config(path: Path, **changes) -> Path:
    config = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"ensembles": {"sizes": [2, 3]}}, "config: ensembles.sizes[1]: 3 is not divisible by the number of raters (2"),
    ({"selection": {"ls": 3, "rs": 1}}, "config: selection.ls: selects 3 label-sampling models but the sweep has "
                                        "only 2 configurations"),
    ({"selection": {"ls": 2, "rs": 3}}, "config: selection.rs: selects 3 models per rater but the sweep has only 2"),
    ({"ensembles": {"sizes": [4]}}, "config: ensembles.sizes[0]: 4 is larger than the 2 label-sampling models"),
    ({"evaluation": {"binz": 3}}, "config: evaluation.binz: unknown key"),
    ({"evaluation": {"bins": "ten"}}, "config: evaluation.bins: 'ten' is not of type 'integer'"),
    ({"fusion": {"iou": 1.5}}, "config: fusion.iou: 1.5 is greater than the maximum of 1"),
])
def test_bad_config_is_one_error_naming_the_key(changes, message):
    from multirater.config import SCHEMA_PATH
    from multirater.workflow_config import load_workflow_config
    from multirater.core.errors import UserError

    config = json.loads(json.dumps({**CONFIG, **changes}))
    with pytest.raises(UserError) as err:
        load_workflow_config(config, SCHEMA_PATH)
    assert str(err.value).startswith(message)


def test_snakemake_stops_on_a_bad_config_with_that_message(tmp_path):
    config = write_config(tmp_path / "bad.yaml", ensembles={"sizes": [2, 3]})
    proc = run_snakemake(tmp_path, config, "-n")
    assert proc.returncode != 0
    assert "config: ensembles.sizes[1]: 3 is not divisible by the number of raters (2" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()  # nothing written


def test_shipped_configs_are_valid_and_match_the_paper_design():
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate
    from multirater.workflow_config import check_design
    from multirater.training.sweep import expand_sweep

    paper = validate(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()), SCHEMA_PATH)
    assert len(expand_sweep(paper)) == 80
    assert paper["selection"] == {"ls": 20, "rs": 10}
    assert paper["ensembles"]["sizes"] == list(range(2, 21, 2))
    assert paper["evaluation"]["iou"] == [0.5, 0.75] and paper["evaluation"]["bins"] == 10
    assert paper["evaluation"]["bootstrap"] == 100 and paper["model"]["name"] == "goat"
    check_design(paper, RATERS, 80)
    demo = validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), SCHEMA_PATH)
    check_design(demo, RATERS, len(expand_sweep(demo)))
    # defaults come from the schema: an empty config is the documented default design
    empty = validate({}, SCHEMA_PATH)
    assert empty["evaluation"] == {"iou": [0.5, 0.75], "bins": 10, "matching": "greedy", "max_dets": 100,
                                   "bootstrap": 100, "seed": 0, "member_draws": 10, "dece_features": [],
                                   "soft_label_sets": None}
    assert empty["dataset"]["manifest"] is None and empty["dataset"]["synthetic"]["raters"] == 2


@pytest.mark.slow
def test_workflow_end_to_end(demo_shaped_run, tmp_path):
    # the run (with its report written right after it, as `make demo` does) is shared (workflow_runs.py);
    # this test reruns and deletes things, so it works on a copy
    work, config = demo_shaped_run.copy(tmp_path)
    r = work / "results"

    # --- the report, written right after the run as `make demo` does ---------------------------
    assert (work / "results" / "report.html").stat().st_size > 0

    # --- every expected output ---------------------------------------------------------------
    ids = [line.split("\t")[0] for line in (r / "sweep" / "configs.tsv").read_text().splitlines()[1:]]
    assert len(ids) == 2 and all(len(i) == 8 for i in ids)
    for name in ("data/check.txt", "data/splits.json", "agreement/counts.csv", "agreement/f1_vs_iou.csv",
                 "models/pretrain/status.json", "selection/selection.csv"):
        assert (r / name).is_file(), name
    for strategy in STRATEGIES:
        for cid in ids:
            status = json.loads((r / "models" / strategy / cid / "status.json").read_text())
            assert status["strategy"] == strategy and status["config_id"] == cid
            assert (r / "models" / strategy / cid / "best.pt").is_file()
            preds = json.loads((r / "predictions" / "test" / strategy / f"{cid}.json").read_text())
            assert preds["format"] == "multirater-detections"
            assert len(preds["image_ids"]) == CONFIG["dataset"]["synthetic"]["consensus_images"]
            assert (r / "metrics" / "models" / strategy / f"{cid}.json").is_file()
    selection = pd.read_csv(r / "selection" / "selection.csv")
    assert len(selection) == 6
    selected = selection[selection.selected]
    assert selected.groupby("strategy").size().to_dict() == {"ls": 2, "rs-rater1": 1, "rs-rater2": 1}
    # the members are the top-ranked selected models: LSE_2 = top 2 LS, RSE_2 = top 1 per rater
    def members_file(kind):
        return json.loads((r / "ensembles" / kind / "2" / "members.json").read_text())["members"]

    members = [m["detections"] for m in members_file("rse")]
    best = {s: selected[selected.strategy == s].sort_values("rank").config_id.tolist() for s in STRATEGIES}
    assert members == [f"results/predictions/test/rs-{x}/{best['rs-' + x][0]}.json" for x in RATERS]
    assert [m["source"] for m in members_file("rse")] == RATERS
    assert [m["detections"] for m in members_file("lse")] == [
        f"results/predictions/test/ls/{c}.json" for c in best["ls"]]
    for kind in ("lse", "rse"):
        fused = json.loads((r / "ensembles" / kind / "2" / "fused.json").read_text())
        assert fused["format"] == "multirater-detections"
        metrics = json.loads((r / "metrics" / "ensembles" / kind / "2.json").read_text())
        assert metrics["settings"]["bootstrap"] == 20 and set(metrics["reliability"]) == {"0.5", "0.75"}
        # identity travels in the files: members file -> fused detections -> metrics
        identity = {"kind": kind, "size": 2, "members": [
            {"strategy": m["strategy"], "config_id": m["config_id"], "source": m["source"]}
            for m in members_file(kind)]}
        assert fused["meta"]["identity"] == identity and metrics["identity"] == identity
    for strategy in STRATEGIES:
        for cid in ids:
            metrics = json.loads((r / "metrics" / "models" / strategy / f"{cid}.json").read_text())
            assert metrics["identity"] == {"strategy": strategy, "config_id": cid}
    tidy = pd.read_csv(r / "tables" / "metrics.csv")
    assert set(tidy.kind) == {"single", "lse", "rse"}
    assert len(tidy[tidy.kind == "single"][["strategy", "config_id"]].drop_duplicates()) == 6
    assert set(tidy[tidy.metric == "D-ECE"].iou) == {0.5, 0.75}
    table1 = pd.read_csv(r / "tables" / "table1.csv")
    assert table1.n_models.tolist() == [2, 1, 1]
    for name in ("table1.md", "table1.tex", "significance.csv", "lse_vs_rse.csv"):
        assert (r / "tables" / name).stat().st_size > 0
    figures = ["fig1_rater_agreement", "fig2_interrater", "fig3_reliability", "fig4_ensemble_size"]
    for stem in figures:
        assert (r / "figures" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (r / "figures" / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"

    # --- the review queue of the test images (part of all): the largest RSE, as apply would count ----------
    boxes = pd.read_csv(r / "review" / "test" / "boxes.csv")
    fused = json.loads((r / "ensembles" / "rse" / "2" / "fused.json").read_text())
    assert len(boxes) == len(fused["detections"]) and {"votes_rater1", "votes_rater2"} <= set(boxes.columns)
    assert (r / "review" / "test" / "contact_sheet.png").read_bytes()[:4] == b"\x89PNG"

    # --- the report holds the figures and tables with their captions --------------------------
    snakemake(work, config, "--report", "results/report.html")
    report = (r / "report.html").read_text(errors="replace")
    assert "Table 1 (paper Table 1)" in report and "Figure 3 (paper Fig. 3)" in report
    assert "Review queue: the boxes to look at first (test images)" in report
    assert "reproduces Campi et al." in report  # the workflow's own description (workflow/report/workflow.rst)
    # the front page says what was found (tests/test_report_front_page.py renders it in a browser)
    assert "What this run found" in report and "A single run's direction is not evidence" in report

    # --- where it ran: run.json, every training's own record ------------------------------------
    import torch

    run = json.loads((r / "run.json").read_text())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert run["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert not run["mixed"] and sorted(run["trainings"][0]["jobs"]) == sorted(
        ["pretrain", *(f"{s}/{c}" for s in STRATEGIES for c in ids)])
    job = run["trainings"][0]["environment"]
    assert job["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # same machine, nothing pinned
    assert (job["threads"], job["device"], job["gpu"], job["kernels"]) == (1, "cpu", None, {})
    assert job["versions"]["torch"] == torch.__version__

    # --- a rerun has nothing to do ------------------------------------------------------------
    assert planned_jobs(snakemake(work, config, "-n")) == {}

    # --- checkpoints deleted, figures and tables regenerated without any training ---------------
    statuses = {p: p.stat().st_mtime_ns for p in (r / "models").glob("*/*/status.json")}
    for ckpt in (r / "models").glob("[lr]s*/*/*.pt"):
        ckpt.unlink()
    for path in [*(r / "figures").iterdir(), *(r / "tables").iterdir()]:
        path.unlink()
    plan = planned_jobs(snakemake(work, config, "-n", "figures"))
    assert plan and not TRAINING_JOBS & set(plan), plan
    assert {"tables", "figure3", "figure4"} <= set(plan)
    snakemake(work, config, "figures")
    for stem in figures:
        assert (r / "figures" / f"{stem}.png").is_file()

    # --- evaluation or ensemble settings never retrain ----------------------------------------
    changed = write_config(tmp_path / "eval.yaml", evaluation={**CONFIG["evaluation"], "bootstrap": 10},
                           fusion={"iou": 0.4})
    plan = planned_jobs(snakemake(work, changed, "-n"))
    # evaluate_detections: the 6 models and the 2 ensembles
    assert plan["evaluate_detections"] == 6 + 2 and plan["fuse"] == 2 and not TRAINING_JOBS & set(plan), plan

    # --- a new configuration runs only its own training jobs ----------------------------------
    more = write_config(tmp_path / "more.yaml", sweep={"grid": {"lr": [0.001, 0.0005, 0.0002]}})
    plan = planned_jobs(snakemake(work, more, "-n"))
    # evaluate_detections: the new configuration's 3 models, and the 2 ensembles (the selection changes)
    assert plan["train"] == 3 and plan["predict"] == 3 and plan["evaluate_detections"] == 3 + 2, plan
    assert "pretrain" not in plan and "synth" not in plan and "split" not in plan
    snakemake(work, more)
    new_ids = set((r / "models" / "ls").iterdir()) - {r / "models" / "ls" / c for c in ids}
    assert len(new_ids) == 1
    assert {p: p.stat().st_mtime_ns for p in statuses} == statuses  # no old model was retrained
    assert len(pd.read_csv(r / "selection" / "selection.csv")) == 9
    assert planned_jobs(snakemake(work, more, "-n")) == {}


@pytest.mark.slow
def test_a_diverging_configuration_does_not_stop_the_sweep(tmp_path):
    """An absurd learning rate in the grid (Adam at 1e30: the weights overflow float32; at 1e6 the loss
    stays finite) ends as `diverged` without stopping the run; those models have no rank in
    selection.csv, are never selected, and selection.csv (every model, its status) is in the report."""
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(tmp_path / "config.yaml",
                          dataset={"manifest": None, "synthetic": {"seed": 3, "images": 8, "consensus_images": 4,
                                                                   "raters": 1, "size": 64}},
                          model={"name": "tiny", "min_size": 64, "max_size": 64, "detections_per_img": 50},
                          training={"epochs": 2, "patience": 2, "batch_size": 1, "augment": False},
                          sweep={"grid": {"lr": [0.001, 1e30]}}, selection={"ls": 1, "rs": 1},
                          ensembles={"sizes": [1]})
    snakemake(work, config, "results/selection/selection.csv", "results/sweep/configs.tsv")
    r = work / "results"
    lrs = {row["config_id"]: float(row["lr"])
           for row in pd.read_csv(r / "sweep" / "configs.tsv", sep="\t", dtype=str).to_dict("records")}
    absurd = [i for i, lr in lrs.items() if lr == 1e30]
    assert len(lrs) == 2 and len(absurd) == 1
    selection = pd.read_csv(r / "selection" / "selection.csv", dtype={"config_id": str})
    assert len(selection) == 4  # ls and rs-rater1, two configurations each: every model is listed
    for row in selection.to_dict("records"):
        status = json.loads((r / "models" / row["strategy"] / row["config_id"] / "status.json").read_text())
        if row["config_id"] in absurd:
            assert status["status"] == row["status"] == "diverged", row
            assert pd.isna(row["rank"]) and not row["selected"], row
        else:
            assert status["status"] == row["status"] == "ok", row
            assert row["rank"] == 1 and row["selected"], row

    # The report lists selection.csv, so the diverged models appear in it with their status.
    snakemake(work, config, "--report", str(tmp_path / "report.zip"), "results/selection/selection.csv")
    with zipfile.ZipFile(tmp_path / "report.zip") as report:
        listed = [name for name in report.namelist() if name.endswith("selection.csv")]
        assert listed, report.namelist()
        text = report.read(listed[0]).decode()
    assert sum(f",{i}," in text and ",diverged," in line for line in text.splitlines() for i in absurd) == 2, text
