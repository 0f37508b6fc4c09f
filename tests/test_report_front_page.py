"""The HTML report's front page says what the run found, checked in a real browser.

Cheap: no training. A hand-made results tree (the tables, the selection, every model's status.json with the
environment its training recorded) stands in for a finished run; the real Snakefile then runs its real
`run_record` and `findings` rules on it (`--allowed-rules`), writes the real report (`--report`), and headless
Chromium (Debian's package; .ci/run installs it) renders the report: its DOM must hold the findings, and a
screenshot of the page is taken.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import yaml

from multirater.selection.ranking import write_selection

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONFIG = {
    "dataset": {"manifest": None, "synthetic": {"seed": 3, "images": 16, "consensus_images": 5, "raters": 2,
                                                "size": 96}},
    "model": {"name": "tiny", "min_size": 96, "max_size": 96},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
    "resources": {"device": "cpu"},
}


def environment(capability: str, host: str) -> dict:
    return {"host": host, "commit": "feedc0ffee", "dirty": False, "cpu": "Intel Xeon Gold",
            "cpu_capability": capability, "threads": 1, "device": "cpu", "gpu": None, "kernels": {},
            "versions": {"snakemake": "9.27.1", "torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6",
                         "multirater": "0.1.0"}}


def write_results(work: Path) -> None:
    """What a finished run leaves that the front page reads, and every report item of the findings' DAG."""
    from multirater.config import SCHEMA_PATH
    from multirater.workflow_config import load_workflow_config
    from multirater.training.sweep import configs_tsv, pretrain_config, training_config

    checked, raters, configs = load_workflow_config(json.loads(json.dumps(CONFIG)), SCHEMA_PATH)
    r = work / "results"
    (r / "sweep" / "configs").mkdir(parents=True)
    (r / "sweep" / "configs.tsv").write_text(configs_tsv(configs))
    (r / "sweep" / "pretrain.yaml").write_text(yaml.safe_dump(pretrain_config(checked)))
    for c in configs:
        (r / "sweep" / "configs" / f"{c['config_id']}.yaml").write_text(yaml.safe_dump(training_config(checked, c)))
    ids = [c["config_id"] for c in configs]
    strategies = ["ls", *[f"rs-{x}" for x in raters]]
    # one rater's models trained on another node type: a mixed run
    for strategy in strategies:
        for cid in ids:
            folder = r / "models" / strategy / cid
            folder.mkdir(parents=True)
            env = environment("AVX2", "node2") if strategy == "rs-rater2" else environment("AVX512", "node1")
            (folder / "status.json").write_text(json.dumps({
                "status": "ok", "strategy": strategy, "config_id": cid, "epoch": 2, "best_epoch": 2,
                "best_val_map": 0.3, "message": "", "environment": env}))
    (r / "models" / "pretrain").mkdir()
    (r / "models" / "pretrain" / "status.json").write_text(json.dumps({
        "status": "ok", "strategy": "union", "config_id": "pretrain", "epoch": 1, "best_epoch": 1,
        "best_val_map": 0.1, "message": "", "environment": environment("AVX512", "node1")}))
    write_selection(r / "selection" / "selection.csv", [
        {"strategy": s, "config_id": c, "status": "ok", "val_map": 0.3 + 0.01 * i, "rank": 1, "selected": True}
        for i, (s, c) in enumerate((s, c) for s in strategies for c in ids)])
    best = (strategies[-1], ids[-1])  # the highest validation mAP above
    tables = r / "tables"
    tables.mkdir()
    pd.DataFrame([
        ["lse", 2, "ls", "", "D-ECE", 0.5, 0.048], ["rse", 2, "rs", "", "D-ECE", 0.5, 0.056],
        ["lse", 2, "ls", "", "mAP", None, 0.301], ["rse", 2, "rs", "", "mAP", None, 0.305],
        ["single", 1, best[0], best[1], "mAP", None, 0.287], ["single", 1, best[0], best[1], "D-ECE", 0.5, 0.061],
    ], columns=["kind", "size", "strategy", "config_id", "metric", "iou", "value"]).to_csv(tables / "metrics.csv",
                                                                                          index=False)
    pd.DataFrame([
        {"size": 2, "metric": "D-ECE", "iou": 0.5, "diff_p2.5": -0.012, "diff_p97.5": -0.004, "p_value": 0.0198},
        {"size": 2, "metric": "mAP", "iou": None, "diff_p2.5": -0.02, "diff_p97.5": 0.011, "p_value": 0.61},
    ]).to_csv(tables / "lse_vs_rse.csv", index=False)
    for name in ("table1.csv", "table1.md", "table1.tex", "significance.csv", "label_sets.csv"):
        (tables / name).write_text("not read by the front page\n")


def snakemake(work: Path, config: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(config), "--profile", str(REPO / "profiles" / "local"), "--cores", "1",
           "--allowed-rules", "run_record", "findings", *args, "--", "results/report/findings.rst"]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    return done.stdout + done.stderr


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a local page; --virtual-time-budget lets the report's scripts render it first."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=15000", *args, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def visible_text(dom: str) -> str:
    """The DOM's text, without scripts and styles (the report also carries its data as JSON in scripts)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", dom)).split())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_front_page_shows_the_findings_in_a_browser(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    write_results(work)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    snakemake(work, config, "--report", "report.html", "--report-after-run")
    report = work / "report.html"
    run = json.loads((work / "results" / "run.json").read_text())
    assert run["mixed"] is True and [len(g["jobs"]) for g in run["trainings"]] == [5, 2]

    text = visible_text(chromium(report, tmp_path / "chromium", "--dump-dom").stdout)
    # what was found: the comparison with its interval and p-value, the best model, the calibration headline
    assert "What this run found" in text
    assert "2 D-ECE@0.5 0.048 0.056 -0.008 [-0.012, -0.004] 0.02" in text
    assert "2 mAP 0.301 0.305 -0.004 [-0.020, 0.011] 0.61" in text
    assert "Best single model" in text and "validation mAP 0.350; on the test set mAP 0.287, D-ECE@0.5 0.061" in text
    assert "Post-hoc calibration is off" in text
    assert "A single run's direction is not evidence" in text
    # where it ran: the mixed run, with each environment
    assert "Mixed run: the 7 trainings ran in 2 different environments" in text
    assert "torch dispatching to AVX2" in text and "host node2" in text
    # the rest of the front page is still there
    assert "What ran." in text and "How it was measured." in text

    shot = tmp_path / "front_page.png"
    chromium(report, tmp_path / "chromium", "--window-size=1400,1800", "--hide-scrollbars", f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 1800)
    if os.environ.get("MULTIRATER_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["MULTIRATER_SCREENSHOT"])
