"""Using the calibrated ensemble on new images: `multirater count` on a real fused file, the `apply`
target's config errors, and one real reduced workflow run of `snakemake apply` on synthetic images."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import CONFIG, planned_jobs, run_snakemake, snakemake
from workflow_runs import write_yaml

from multirater.cli import main

BIN = Path(sys.executable).parent


def _write_model(path: Path, model: str, records: list[dict]) -> str:
    path.write_text(json.dumps({"format": "multirater-detections", "image_ids": [1, 2, 3], "detections": records,
                                "meta": {"model": model, "images": "new",
                                         "file_names": {"1": "a.png", "2": "b.png", "3": "c.png"}}}))
    return str(path)


def test_count_on_a_fused_ensemble_hand_computed(tmp_path, capsys):
    box = [10.0, 10.0, 20.0, 20.0]
    a = _write_model(tmp_path / "a.json", "A", [
        {"image_id": 1, "category_id": 1, "bbox": box, "score": 0.8},
        {"image_id": 2, "category_id": 1, "bbox": box, "score": 0.4}])
    b = _write_model(tmp_path / "b.json", "B", [{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.6}])
    fused = tmp_path / "fused.json"
    assert main(["fuse", "--out", str(fused), a, b, "--sources", "rater1", "rater2"]) == 0
    meta = json.loads(fused.read_text())["meta"]
    assert meta["file_names"] == {"1": "a.png", "2": "b.png", "3": "c.png"}  # shared meta survives fusion
    assert "model" not in meta  # what the members disagree on does not

    out = tmp_path / "counts.csv"
    assert main(["count", "--detections", str(fused), "--out", str(out)]) == 0
    counts = pd.read_csv(out, keep_default_na=False, na_values=[""])
    # image 1: one fused box, (0.8 + 0.6) / 2 = 0.7, one vote per rater; image 2: 0.4 / 2 = 0.2 from
    # rater1 only (below 0.5: no votes averaged); image 3: nothing
    assert counts.image_id.tolist() == [1, 2, 3]
    assert counts.file_name.tolist() == ["a.png", "b.png", "c.png"]
    assert counts.n_detections.tolist() == [1, 1, 0]
    assert counts.n_above_threshold.tolist() == [1, 0, 0]
    assert counts.expected_count.tolist() == pytest.approx([0.7, 0.2, 0.0])
    assert counts.count_std.tolist() == pytest.approx([math.sqrt(0.21), 0.4, 0.0])
    assert counts.votes_rater1[0] == 1 and counts.votes_rater2[0] == 1
    assert counts.votes_rater1[1:].isna().all() and counts.votes_rater2[1:].isna().all()

    # a lower threshold counts image 2's box, which only rater1's model found
    assert main(["count", "--detections", str(fused), "--out", str(out), "--threshold", "0.2"]) == 0
    counts = pd.read_csv(out)
    assert counts.n_above_threshold.tolist() == [1, 1, 0]
    assert counts.votes_rater1[1] == 1 and counts.votes_rater2[1] == 0


def test_count_bad_input_is_one_error_and_no_output(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"detections": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                               "score": 1.5}]}))
    out = tmp_path / "counts.csv"
    proc = subprocess.run([str(BIN / "multirater"), "count", "--detections", str(bad), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"multirater count: error: {bad}: detection 0: score must lie in [0, 1], got 1.5"]
    assert not out.exists()
    proc = subprocess.run([str(BIN / "multirater"), "count", "--detections", str(bad), "--out", str(out),
                           "--threshold", "2"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--threshold: must lie in [0, 1], got 2.0" in proc.stderr
    assert not out.exists()


def _config(path: Path, **changes) -> Path:
    config = {**json.loads(json.dumps(CONFIG)), **changes}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("apply, message", [
    ({}, "config: apply.images: not set; name the folder of new images"),
    ({"images": "new", "kind": "rse", "size": 3}, "config: apply.size: 3 is not divisible by the number of raters (2"),
    ({"images": "new", "kind": "rse", "size": 4}, "config: apply.size: RSE_4 needs 2 selected models per source but "
                                                  "only 1 are selected (selection.rs)"),
])
def test_apply_target_stops_with_one_message(tmp_path, apply, message):
    (tmp_path / "new").mkdir()
    proc = run_snakemake(tmp_path, _config(tmp_path / "c.yaml", apply=apply), "-n", "apply")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


# One rater and two configurations keep the sweep to 4 one-epoch models of tiny images.
SMALL = {
    "dataset": {"manifest": None, "synthetic": {"seed": 3, "images": 4, "consensus_images": 1, "raters": 1,
                                                "size": 64}},
    "splits": {"val_fraction": 0.25, "seed": 1},
    "model": {"name": "tiny", "min_size": 64, "max_size": 64, "detections_per_img": 20},
    "pretrain": {"epochs": 1, "batch_size": 4},
    "training": {"epochs": 1, "patience": 1, "batch_size": 4, "augment": False},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 2},
    "ensembles": {"sizes": [1, 2]},
    "prediction": {"splits": ["test"], "batch_size": 4},
    "resources": {"device": "cpu"},
    "apply": {"images": "new", "kind": "rse"},  # size: the largest configured, 2
}


@pytest.mark.slow
def test_apply_end_to_end_on_new_images(apply_run, tmp_path):
    # the run of SMALL's apply target on 2 new images (work/new), and the dry runs made before it, are
    # shared (workflow_runs.py); this test reruns nothing, the next one calibrates a copy
    work = apply_run.work
    config = write_yaml(tmp_path / "config.yaml", apply_run.config)
    names = sorted(p.name for p in (work / "new").iterdir())

    # only what the ensemble needs: the sweep and selection, not the test predictions or evaluation;
    # the members and fuse rules are the experiment's, here for the one apply ensemble (stage apply)
    plan = planned_jobs(apply_run.plans["apply"])
    assert {"train", "select", "members", "fuse", "apply_count", "apply"} <= set(plan), plan
    assert plan["members"] == 1 and plan["fuse"] == 1, plan
    assert not {"predict", "evaluate_detections"} & set(plan), plan
    assert "apply_count" not in planned_jobs(apply_run.plans["all"])  # apply is not part of all

    out = work / "results" / "apply" / "rse" / "2"
    assert not (work / "results" / "ensembles").exists()  # no experiment ensemble was built
    selection = pd.read_csv(work / "results" / "selection" / "selection.csv")
    best = selection[selection.selected & (selection.strategy == "rs-rater1")].sort_values("rank").config_id
    members = [f"results/apply/predictions/rs-rater1/{c}.json" for c in best]
    assert [m["detections"] for m in json.loads((out / "members.json").read_text())["members"]] == members
    for path in members:
        preds = json.loads((work / path).read_text())
        assert preds["image_ids"] == [1, 2, 3] and preds["meta"]["file_names"] == {
            str(i + 1): n for i, n in enumerate(names)}
    fused = json.loads((out / "fused.json").read_text())
    assert fused["meta"]["fusion"]["inputs"] == members and fused["meta"]["fusion"]["models"] == 2
    assert fused["meta"]["identity"] == {"kind": "rse", "size": 2, "members": [
        {"strategy": "rs-rater1", "config_id": c, "source": "rater1"} for c in best]}

    counts = pd.read_csv(out / "counts.csv")
    assert counts.file_name.tolist() == names
    for row in counts.itertuples():
        scores = [d["score"] for d in fused["detections"] if d["image_id"] == row.image_id]
        assert row.n_detections == len(scores)
        assert row.n_above_threshold == sum(s >= 0.5 for s in scores)
        assert row.expected_count == pytest.approx(sum(scores))
        assert row.count_std == pytest.approx(math.sqrt(sum(s * (1 - s) for s in scores)))
    assert planned_jobs(snakemake(work, config, "-n", "apply")) == {}  # a rerun has nothing to do

    # the review target: the queue and exports of the new images, from the fused file apply counted
    plan = planned_jobs(snakemake(work, config, "-n", "review"))
    assert plan == {"review_queue": 1, "export_napari": 1, "export_coco": 1, "review": 1}, plan
    snakemake(work, config, "review")
    images = pd.read_csv(work / "results" / "review" / "apply" / "images.csv")
    assert sorted(images.file_name) == names
    assert images.expected_count.sum() == pytest.approx(counts.expected_count.sum())
    labels = work / "results" / "export" / "apply" / "napari-organoid-counter" / "ensemble"
    assert sorted(p.name for p in labels.iterdir()) == sorted(n.replace(".png", ".json") for n in names)
    assert len(json.loads((work / "results" / "export" / "apply" / "coco.json").read_text())) == len(
        fused["detections"])


def test_apply_commands_do_not_import_heavy_libraries():
    code = ("import sys, argparse, multirater.apply.commands as a; "
            "a.register(argparse.ArgumentParser().add_subparsers()); "
            "print([m for m in ('torch', 'matplotlib', 'pandas', 'scipy') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_apply_ensemble_defaults_to_the_largest_size(tmp_path):
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate
    from multirater.workflow_config import apply_ensemble
    from multirater.core.errors import UserError

    (tmp_path / "new").mkdir()
    config = validate({**json.loads(json.dumps(CONFIG)), "ensembles": {"sizes": [2, 4]},
                       "selection": {"ls": 4, "rs": 2}, "apply": {"images": str(tmp_path / "new")}}, SCHEMA_PATH)
    assert apply_ensemble(config, ["rater1", "rater2"]) == ("rse", 4)  # kind rse by default, size max(2, 4)
    config["apply"].update(kind="lse", size=6)  # LSE_6 needs 6 of the 4 selected label-sampling models
    with pytest.raises(UserError) as err:
        apply_ensemble(config, ["rater1", "rater2"])
    assert str(err.value) == ("config: apply.size: LSE_6 needs 6 selected models per source but only 4 are "
                              "selected (selection.ls)")
    config["apply"]["images"] = str(tmp_path / "missing")
    with pytest.raises(UserError, match="config: apply.images: .*missing: no such folder"):
        apply_ensemble(config, ["rater1", "rater2"])


# With calibration on, apply counts with the headline approach's calibrator.
CALIBRATED = {**SMALL, "calibration": {"enabled": True, "methods": ["isotonic"], "targets": ["soft"],
                                       "headline": {"approach": "rse", "method": "isotonic", "target": "soft"}}}


@pytest.mark.slow
def test_apply_with_the_headline_calibrator(apply_run, tmp_path):
    import numpy as np

    # calibration switched on in a copy of the shared apply run of SMALL (workflow_runs.py): the same
    # models and new images; what calibration needs on top is planned and run below
    work, _ = apply_run.copy(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CALIBRATED))

    # the calibrator and the test set's evidence for the headline only, not the whole calibration table
    plan = planned_jobs(snakemake(work, config, "-n", "apply"))
    assert {"calibrate", "count_accuracy", "apply_recalibrate", "apply_count_calibrated"} <= set(plan), plan
    assert "calibration_table" not in plan and "apply_count" not in plan, plan
    snakemake(work, config, "apply")
    r = work / "results"
    out = r / "apply" / "rse" / "isotonic-soft"
    calibrator = json.loads((r / "calibration" / "rse" / "isotonic-soft" / "calibrator.json").read_text())
    assert calibrator["fitted"]["detections"] == "results/val_ensembles/rse/2/fused.json"
    fused = json.loads((r / "apply" / "rse" / "2" / "fused.json").read_text())
    calibrated = json.loads((out / "detections.json").read_text())
    # isotonic: linear between the breakpoints, constant beyond them
    raw = np.array([d["score"] for d in fused["detections"]])
    assert [d["score"] for d in calibrated["detections"]] == pytest.approx(
        np.clip(np.interp(raw, calibrator["x"], calibrator["y"]), 0, 1), abs=1e-12)
    assert calibrated["meta"]["calibration"]["method"] == "isotonic"

    counts = pd.read_csv(out / "counts.csv")
    for row in counts.itertuples():
        scores = [d["score"] for d in calibrated["detections"] if d["image_id"] == row.image_id]
        assert row.expected_count == pytest.approx(sum(scores))
        sd = math.sqrt(sum(s * (1 - s) for s in scores))
        assert (row.count_lower, row.count_upper) == pytest.approx((sum(scores) - 1.96 * sd, sum(scores) + 1.96 * sd))
    # how well this approach's counts held on the test set: recounted from the recalibrated test detections
    test = json.loads((r / "calibration" / "rse" / "isotonic-soft" / "test.json").read_text())
    consensus = json.loads((r / "data" / "synthetic" / "consensus.json").read_text())
    errors = []
    for image_id in test["image_ids"]:
        expected = sum(d["score"] for d in test["detections"] if d["image_id"] == image_id)
        true = sum(a["image_id"] == image_id for a in consensus["annotations"])
        errors.append(abs(expected - true))
    assert counts.test_count_mae.tolist() == pytest.approx([float(np.mean(errors))] * len(counts))
    assert "on the test set (1 images" in (r / "logs" / "apply" / "rse" / "isotonic-soft" / "count.log").read_text()
    assert planned_jobs(snakemake(work, config, "-n", "apply")) == {}

    # a single-model headline predicts the new images with that one model only: the best-ranked ls model
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump({**CALIBRATED, "calibration": {
        **CALIBRATED["calibration"], "headline": {"approach": "ls", "method": "isotonic", "target": "soft"}}}))
    snakemake(work, single, "results/ensembles/lse/2/members.json")  # where the best ls model is read from
    plan = planned_jobs(snakemake(work, single, "-n", "apply"))
    assert plan["apply_predict"] == 1 and plan["calibrate"] == 1 and "fuse" not in plan, plan
