"""The data commands end to end through the installed `multirater` executable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from multirater.agreement.commands import OUTPUT_FILES

EXE = str(Path(sys.executable).with_name("multirater"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


def test_data_commands_do_not_import_heavy_libraries():
    code = (
        "import sys, argparse, multirater.data.commands as d; "
        "d.register(argparse.ArgumentParser().add_subparsers()); "
        "heavy = [m for m in ('torch', 'matplotlib', 'pandas', 'scipy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_synth_check_split_agreement(tmp_path):
    data = tmp_path / "data"
    r = _run("synth", "--out", str(data), "--images", "8", "--consensus-images", "2", "--size", "128", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert (data / "dataset.yaml").exists() and len(list((data / "images").iterdir())) == 10

    r = _run("check", "--dataset", str(data / "dataset.yaml"))
    assert r.returncode == 0 and "8 multi-rater images, 2 consensus images" in r.stdout, r.stderr

    r = _run("split", "--dataset", str(data / "dataset.yaml"), "--out", str(tmp_path / "splits.json"), "--val-fraction", "0.25", "--seed", "1")
    assert r.returncode == 0, r.stderr
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert set(splits) == {"seed", "val_fraction", "train", "val", "test"}
    assert len(splits["val"]) == 2 and len(splits["train"]) == 6 and splits["test"] == [9, 10]

    r = _run("agreement", "--dataset", str(data / "dataset.yaml"), "--out", str(tmp_path / "agreement"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "agreement").iterdir()) == sorted(OUTPUT_FILES)
    counts = pd.read_csv(tmp_path / "agreement" / "counts.csv")
    rater1 = json.loads((data / "rater1.json").read_text())
    assert counts[counts.rater == "rater1"].n_objects.sum() == len(rater1["annotations"])
    retained = sum(a["attributes"]["source"] == "pretrained" for a in rater1["annotations"])
    assert counts[counts.rater == "rater1"].n_retained.sum() == retained


def test_synth_presets_and_second_passes_through_agreement(tmp_path):
    data = tmp_path / "data"
    r = _run("synth", "--out", str(data), "--images", "12", "--consensus-images", "1", "--size", "128", "--seed", "3",
             "--preset", "biased", "--repeat-images", "6", "--rater-style", "rater2:spurious=0")
    assert r.returncode == 0, r.stderr
    r = _run("check", "--dataset", str(data / "dataset.yaml"))
    assert r.returncode == 0 and "second passes: rater1 6 images, rater2 6 images" in r.stdout, r.stderr
    r = _run("agreement", "--dataset", str(data / "dataset.yaml"), "--out", str(tmp_path / "agreement"))
    assert r.returncode == 0, r.stderr
    f1 = pd.read_csv(tmp_path / "agreement" / "f1_vs_iou.csv")
    at = f1[f1.iou == 0.5].set_index("agreement")["f1_mean"]
    assert at["intra"].min() > at["inter"]  # biased raters repeat themselves better than they agree
    assert "intra-rater (pass 1 vs 2)" in r.stdout.strip().splitlines()[-1]


def test_errors_are_one_line_with_exit_2(tmp_path):
    r = _run("check", "--dataset", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"multirater check: error: {tmp_path / 'missing.yaml'}: file not found"
    r = _run("split", "--dataset", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "s.json"))
    assert r.returncode == 2 and not (tmp_path / "s.json").exists()
