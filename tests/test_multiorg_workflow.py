"""MultiOrg in the workflow: the fixture of tests/multiorg_fixture.py in the published layout, imported with
the one documented command (`multirater import --format multiorg --majority`), then the workflow on it with
a tiny design: LS and RS per annotator (each train image labelled by one annotator), tiled training, LSE and
RSE, and every model and ensemble evaluated against every test label set (t0, t1_A, t1_B, majority), with
the headline label set chosen in the config, and calibrators fitted on validation images that each have one
annotator. Also: config/multiorg.yaml, the headline label-set rule, and the per-label-set table on hand-written
metrics files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from multiorg_fixture import LABEL_SETS, write_multiorg
from multirater.cli import main
from multirater.config import SCHEMA_PATH
from multirater.config.schema import validate
from multirater.core.errors import UserError
from multirater.workflow_config import headline_label_set, load_workflow_config
from test_workflow import REPO, planned_jobs, snakemake

ANNOTATORS = ["Annotator_A", "Annotator_B"]
STRATEGIES = ["ls", *(f"rs-{a}" for a in ANNOTATORS)]
ALL_LABEL_SETS = [*LABEL_SETS, "majority"]  # the published three, then the import's majority consensus
HEADLINE = "majority"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's download, imported with the majority consensus; a separate synthetic base dataset for the
    pretrain job (the base model must never learn the experiment's labels). Returns the folder of both."""
    root = tmp_path_factory.mktemp("multiorg")
    write_multiorg(root / "download")
    assert main(["import", "--format", "multiorg", "--images", str(root / "download"), "--out", str(root / "ds"),
                 "--majority"]) == 0
    assert main(["synth", "--labels", "detector", "--out", str(root / "base"), "--images", "6", "--size", "96"]) == 0
    return root


def tiny_config(root: Path) -> dict:
    """Two configurations (LSE_2 needs two LS models), one epoch, a 192 px tile so the fixture's 384 x 320 px
    image trains on crops and the others whole, 5 resamples, the majority as the headline label set."""
    config = {
        "dataset": {"manifest": str(root / "ds" / "dataset.yaml"),
                    "base_manifest": str(root / "base" / "dataset.yaml")},
        "splits": {"val_fraction": 0.25, "seed": 1},
        "model": {"name": "tiny", "min_size": 192, "max_size": 192, "tile_size": 192, "tile_overlap": 48,
                  "detections_per_img": 50},
        "pretrain": {"epochs": 1, "batch_size": 4},
        "training": {"epochs": 1, "patience": 1, "batch_size": 4, "augment": False},
        "sweep": {"grid": {"lr": [0.001, 0.0005]}},
        "selection": {"ls": 2, "rs": 1},
        "ensembles": {"sizes": [2]},
        "evaluation": {"bootstrap": 5, "seed": 0, "label_set": HEADLINE},
        "prediction": {"splits": ["test"], "batch_size": 4},
        "resources": {"device": "cpu"},
    }
    return json.loads(json.dumps(config))


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# --- config/multiorg.yaml and the headline label set ----------------------------------------------------------
def test_multiorg_config_is_valid_and_fits_the_imported_layout(imported):
    shipped = yaml.safe_load((REPO / "config" / "multiorg.yaml").read_text())
    checked = validate(shipped, SCHEMA_PATH)
    model = checked["model"]
    assert model["name"] in ("goat", "resnet50_fpn") and model["base_checkpoint"]
    # MultiOrg images (about 6390 x 5724 px) are tiled; windows enter the model unresized
    assert model["tile_overlap"] < model["tile_size"] < 5724
    assert model["min_size"] == model["max_size"] == model["tile_size"]
    assert checked["evaluation"]["label_set"] == HEADLINE
    # with the imported layout in place of the manifest placeholder, every cross-key rule holds
    loaded, raters, configs = load_workflow_config({**shipped, "dataset": {
        **shipped["dataset"], "manifest": str(imported / "ds" / "dataset.yaml")}}, SCHEMA_PATH)
    assert raters == ANNOTATORS and len(configs) == shipped["sweep"]["random"]["n"]
    assert all(size % len(ANNOTATORS) == 0 for size in loaded["ensembles"]["sizes"])
    assert loaded["evaluation"]["label_set"] == HEADLINE
    assert loaded["calibration"]["enabled"] and loaded["calibration"]["reference"] == "auto"


def test_headline_label_set_defaults_and_is_checked(imported):
    manifest = str(imported / "ds" / "dataset.yaml")
    no_consensus = {"dataset": {"manifest": manifest}, "evaluation": {}}
    assert headline_label_set(no_consensus) == "majority"  # no consensus: the import's majority
    assert headline_label_set({**no_consensus, "evaluation": {"label_set": "t1_B"}}) == "t1_B"
    synthetic = {"dataset": {"manifest": None}, "evaluation": {"label_set": None}}
    assert headline_label_set(synthetic) == "consensus"
    with pytest.raises(UserError) as err:
        headline_label_set({**no_consensus, "evaluation": {"label_set": "consensus"}})
    assert str(err.value) == (f"config: evaluation.label_set: 'consensus' is not a test label set of {manifest} "
                              "(t0, t1_A, t1_B, majority)")
    with pytest.raises(UserError) as err:
        headline_label_set({**synthetic, "evaluation": {"label_set": "t0"}})
    assert "'t0' is not a test label set of the synthetic dataset (consensus)" in str(err.value)


def test_dry_run_evaluates_every_model_and_ensemble_on_every_label_set(imported, tmp_path):
    config = write_yaml(tmp_path / "config.yaml", tiny_config(imported))
    plan = planned_jobs(snakemake(tmp_path, config, "-n"))
    models, ensembles = len(STRATEGIES) * 2, 2
    assert plan["train"] == models and plan["fuse"] == ensembles, plan
    assert plan["evaluate_detections"] == (models + ensembles) * len(ALL_LABEL_SETS), plan


# --- the per-label-set table ------------------------------------------------------------------------------------
def _metrics_file(path: Path, identity: dict, label_set: str | None, gt: str, map_value: float) -> Path:
    entries = [{"metric": "mAP", "iou": None, "value": map_value, "mean": map_value + 0.01, "std": 0.02},
               {"metric": "D-ECE", "iou": 0.5, "value": 0.3, "mean": 0.31, "std": 0.05}]
    settings = {"gt": gt, **({} if label_set is None else {"label_set": label_set})}
    path.write_text(json.dumps({"identity": identity, "settings": settings, "metrics": entries}))
    return path


def test_label_set_table_has_one_row_per_label_set_subject_and_metric(tmp_path):
    from multirater.evaluation.label_set_table import label_set_table

    model = {"strategy": "rs-Annotator_A", "config_id": "0123abcd"}
    ensemble = {"kind": "rse", "size": 2, "members": []}
    headline = [_metrics_file(tmp_path / "m.json", model, "majority", "ds/majority.json", 0.5),
                _metrics_file(tmp_path / "e.json", ensemble, "majority", "ds/majority.json", 0.6)]
    others = [_metrics_file(tmp_path / "m_t0.json", model, "t0", "ds/t0.json", 0.4),
              _metrics_file(tmp_path / "e_t0.json", ensemble, None, "ds/t0.json", 0.45)]  # no label_set: its gt
    table = label_set_table(headline, others)
    assert len(table) == 2 * 2 * 2  # 2 label sets x 2 subjects x 2 metrics
    assert table.label_set.tolist() == ["majority"] * 4 + ["t0"] * 2 + ["ds/t0.json"] * 2
    assert table.headline.tolist() == [True] * 4 + [False] * 4
    # ensembles first, then single models, as metrics.csv
    assert table.kind.tolist()[:4] == ["rse", "rse", "single", "single"]
    row = table[(table.label_set == "t0") & (table.metric == "mAP")].iloc[0]
    assert (row.strategy, row.config_id) == ("rs-Annotator_A", "0123abcd")
    assert (row.value, row["mean"], row["std"]) == pytest.approx((0.4, 0.41, 0.02))
    assert math.isnan(row.iou) and table[table.metric == "D-ECE"].iou.tolist() == [0.5] * 4
    with pytest.raises(UserError, match="as another metrics file does"):
        label_set_table(headline, [*others, _metrics_file(tmp_path / "again.json", model, "t0", "x.json", 0.1)])


# --- end to end -------------------------------------------------------------------------------------------------
# Calibration with one annotator per validation image: the one calibrator that used to stop (an rs model's hard
# target against its annotator), isotonic so that it fits even a constant target. It adds one validation
# prediction and one fit (about 15 s here; the rse and both rs approaches took about a minute).
CALIBRATION = {"enabled": True, "methods": ["isotonic"], "targets": ["hard"],
               "headline": {"approach": "rse", "method": "isotonic", "target": "hard"}}
CALIBRATORS = {f"rs-{ANNOTATORS[0]}": "isotonic-hard"}


@pytest.mark.slow
def test_multiorg_end_to_end(imported, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    config = write_yaml(tmp_path / "config.yaml", {**tiny_config(imported), "calibration": CALIBRATION})
    calibrators = [f"results/calibration/{a}/{v}/calibrator.json" for a, v in CALIBRATORS.items()]
    snakemake(work, config, "results/tables/label_sets.csv", "results/sweep/configs.tsv", *calibrators)
    r = work / "results"

    # LS and RS per annotator trained (two configurations each), on the tiled design
    ids = [line.split("\t")[0] for line in (r / "sweep" / "configs.tsv").read_text().splitlines()[1:]]
    assert len(ids) == 2
    for cid in ids:
        assert yaml.safe_load((r / "sweep" / "configs" / f"{cid}.yaml").read_text())["model"]["tile_size"] == 192
        for strategy in STRATEGIES:
            status = json.loads((r / "models" / strategy / cid / "status.json").read_text())
            assert (status["strategy"], status["config_id"], status["status"]) == (strategy, cid, "ok")

    # the ensembles are fused; the RSE takes one model of each annotator
    for kind in ("lse", "rse"):
        fused = json.loads((r / "ensembles" / kind / "2" / "fused.json").read_text())
        assert fused["meta"]["identity"]["kind"] == kind
    rse = json.loads((r / "ensembles" / "rse" / "2" / "members.json").read_text())["members"]
    assert [m["source"] for m in rse] == ANNOTATORS

    # every model and ensemble against every label set: the headline's at the usual paths, the others beside
    dataset = imported / "ds"
    subjects = [f"models/{s}/{c}" for s in STRATEGIES for c in ids] + [f"ensembles/{k}/2" for k in ("lse", "rse")]
    test_images = len(json.loads((dataset / "majority.json").read_text())["images"])
    for label_set in ALL_LABEL_SETS:
        folder = r / "metrics" if label_set == HEADLINE else r / "metrics" / "label_sets" / label_set
        for subject in subjects:
            metrics = json.loads((folder / f"{subject}.json").read_text())
            assert metrics["settings"]["label_set"] == label_set, subject
            assert Path(metrics["settings"]["gt"]).resolve() == (dataset / f"{label_set}.json").resolve()
            assert metrics["n_images"] == test_images == 3

    # label_sets.csv lists them all, each value as in its metrics file
    table = pd.read_csv(r / "tables" / "label_sets.csv", dtype={"config_id": str})
    assert list(dict.fromkeys(table.label_set)) == [HEADLINE, *LABEL_SETS]
    assert set(table[table.headline].label_set) == {HEADLINE}
    for label_set, rows in table.groupby("label_set"):
        assert len(rows[["kind", "size", "strategy", "config_id"]].drop_duplicates()) == len(subjects), label_set
    folder = r / "metrics" / "label_sets" / "t1_A"
    expected = json.loads((folder / "ensembles" / "rse" / "2.json").read_text())["metrics"]
    got = table[(table.label_set == "t1_A") & (table.kind == "rse")]
    assert got.value.tolist() == pytest.approx([m["value"] for m in expected], nan_ok=True)
    # the headline tables are the majority's
    tidy = pd.read_csv(r / "tables" / "metrics.csv", dtype={"config_id": str})
    assert len(tidy) == len(table[table.label_set == HEADLINE])

    # calibration: an rs model's hard target is fitted on the validation images its annotator labelled only
    val = json.loads((r / "data" / "splits.json").read_text())["val"]
    labelled = {a: {im["id"] for im in json.loads((dataset / f"{a}.json").read_text())["images"]} & set(val)
                for a in ANNOTATORS}
    assert all(labelled.values()) and set.union(*labelled.values()) == set(val)  # both annotators validate
    for approach, variant in CALIBRATORS.items():
        fitted = json.loads((r / "calibration" / approach / variant / "calibrator.json").read_text())["fitted"]
        detections = json.loads((work / fitted["detections"]).read_text())
        assert sorted(detections["image_ids"]) == sorted(val), approach
        images = labelled[approach[3:]] if approach.startswith("rs-") else set(val)
        on_images = sum(d["image_id"] in images for d in detections["detections"])
        assert fitted["reference"] == (approach[3:] if approach.startswith("rs-") else None)
        assert (fitted["n_images"], fitted["n_images_left_out"]) == (len(images), len(val) - len(images))
        assert fitted["n_detections"] == on_images > 0
        assert fitted["n_detections_left_out"] == len(detections["detections"]) - on_images
