"""A lab with two annotators and no consensus (docs/own-data.md, "Two annotators, no consensus"): each annotator
labelled their own training images and, separately, the same held-out test images. Imported with the one documented
command (napari-organoid-counter files, `--test-labels` for each annotator's test labels: the test label sets
test_<annotator>), then the demo-shaped workflow runs end to end (tiny model, 64 px images, one epoch): it
derives the majority of the two test label sets, says so in its log and its report, and evaluates every model
and ensemble against the majority (the headline) and against each annotator. The CSV importer takes each
annotator's test labels too.

The reference for the majority is worked out by hand from how the test labels are built: annotator B marks each
of A's objects 1 px narrower, misses A's last object of each image and marks one object A did not; with two
label sets an object counts where both mark it (more than half), at the mean of their boxes: A's boxes 0.5 px
narrower, A's last and B's extra dropped."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from multirater.cli import main
from multirater.data.dataset import load_dataset
from test_workflow import planned_jobs, snakemake

ANNOTATORS = ["anna", "ben"]
TEST_SETS = [f"test_{a}" for a in ANNOTATORS]
EXTRA = [1.0, 1.0, 6.0, 6.0]  # B's own object (COCO x, y, w, h): a corner no synthetic organoid fills
TRAIN_IMAGES, TEST_IMAGES = 8, 3


def napari_entries(boxes: list[list[float]]) -> dict:
    """COCO boxes as napari-organoid-counter saves them: x along rows, numbers as strings."""
    return {str(k): {"box_id": str(k), "x1": str(y), "x2": str(y + h), "y1": str(x), "y2": str(x + w),
                     "confidence": "1.0", "scale_x": "1.0", "scale_y": "1.0", "label": 0}
            for k, (x, y, w, h) in enumerate(boxes)}


def second_annotator(boxes: list[list[float]]) -> list[list[float]]:
    """B's test labels from A's: each of A's objects but the last 1 px narrower, and one of B's own."""
    return [[x, y, w - 1, h] for x, y, w, h in boxes[:-1]] + [EXTRA]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's folders: images/, labels/<annotator>/ (training images, each annotator's own), test-labels/
    <annotator>/ (the same test images, both); and a synthetic base dataset for the pretrain job."""
    root = tmp_path_factory.mktemp("lab")
    assert main(["synth", "--out", str(root / "synth"), "--seed", "5", "--images", str(TRAIN_IMAGES + TEST_IMAGES),
                 "--consensus-images", "1", "--raters", "2", "--size", "64"]) == 0
    synth = load_dataset(root / "synth" / "dataset.yaml")
    ids = sorted(synth.rater_image_ids)
    train, test = ids[:TRAIN_IMAGES], ids[TRAIN_IMAGES:]
    (root / "images").mkdir()
    for image_id in ids:
        name = synth.images[image_id].file_name
        shutil.copy(root / "synth" / "images" / name, root / "images" / name)
        stem = Path(name).stem
        for annotator, rater in zip(ANNOTATORS, synth.rater_names):
            boxes = synth.boxes(rater, image_id).tolist()  # COCO [x, y, w, h]
            if image_id in train:
                target = root / "labels" / annotator / f"{stem}.json"
            else:
                first = synth.boxes(synth.rater_names[0], image_id).tolist()
                boxes = first if annotator == ANNOTATORS[0] else second_annotator(first)
                target = root / "test-labels" / annotator / f"{stem}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(napari_entries(boxes)))
    assert main(["synth", "--labels", "detector", "--out", str(root / "base"), "--images", "6", "--size", "64"]) == 0
    return root


@pytest.fixture(scope="module")
def imported(lab: Path) -> Path:
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(lab / "images"),
                 "--labels", str(lab / "labels"), "--test-labels", str(lab / "test-labels"),
                 "--out", str(lab / "ds")]) == 0
    assert main(["check", "--dataset", str(lab / "ds" / "dataset.yaml")]) == 0
    return lab / "ds" / "dataset.yaml"


def test_each_annotators_test_labels_become_a_test_label_set(imported: Path, lab: Path) -> None:
    manifest = yaml.safe_load(imported.read_text())
    assert list(manifest["raters"]) == ANNOTATORS and "consensus" not in manifest
    assert manifest["test_label_sets"] == {s: f"{s}.json" for s in TEST_SETS}
    ds = load_dataset(imported)
    assert len(ds.rater_image_ids) == TRAIN_IMAGES
    for label_set in TEST_SETS:
        assert len(ds.label_set_image_ids(label_set)) == TEST_IMAGES
    # B's labels as written (B's extra object is in every test image)
    ben = ds.coco("test_ben")
    assert sum(a["bbox"] == EXTRA for a in ben["annotations"]) == TEST_IMAGES


def test_the_csv_importer_takes_each_annotators_test_labels(tmp_path: Path, lab: Path) -> None:
    # the reference code's CSV: one file per image, the annotator in a column
    for folder, source in (("labels", lab / "labels"), ("test-labels", lab / "test-labels")):
        (tmp_path / folder).mkdir()
        stems = sorted(p.stem for p in (source / ANNOTATORS[0]).iterdir())
        for stem in stems:
            with open(tmp_path / folder / f"{stem}.csv", "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["x1", "y1", "x2", "y2", "annotator", "mask"])
                for annotator in ANNOTATORS:
                    for entry in json.loads((source / annotator / f"{stem}.json").read_text()).values():
                        writer.writerow([entry["y1"], entry["x1"], entry["y2"], entry["x2"], annotator, ""])
    assert main(["import", "--format", "csv", "--images", str(lab / "images"), "--labels", str(tmp_path / "labels"),
                 "--test-labels", str(tmp_path / "test-labels"), "--out", str(tmp_path / "ds")]) == 0
    from_csv = load_dataset(tmp_path / "ds" / "dataset.yaml")
    assert from_csv.label_sets == TEST_SETS
    # the same boxes as the napari files of the same labels
    for annotator, label_set in zip(ANNOTATORS, TEST_SETS):
        written = sorted(tuple(a["bbox"]) for a in from_csv.coco(label_set)["annotations"])
        given = sorted((float(e["y1"]), float(e["x1"]), float(e["y2"]) - float(e["y1"]), float(e["x2"]) - float(e["x1"]))
                       for path in (lab / "test-labels" / annotator).iterdir()
                       for e in json.loads(path.read_text()).values())
        np.testing.assert_allclose(written, given, atol=1e-9, err_msg=label_set)


def test_test_labels_of_a_training_image_are_refused(tmp_path: Path, lab: Path, capsys) -> None:
    shutil.copytree(lab / "test-labels", tmp_path / "test-labels")
    train_label = sorted((lab / "labels" / "anna").iterdir())[0]
    shutil.copy(train_label, tmp_path / "test-labels" / "anna" / train_label.name)
    assert main(["import", "--format", "napari-organoid-counter", "--images", str(lab / "images"),
                 "--labels", str(lab / "labels"), "--test-labels", str(tmp_path / "test-labels"),
                 "--out", str(tmp_path / "ds")]) != 0
    image = train_label.stem + ".png"
    assert f"image {image}: image has both rater and test_anna annotations" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_without_consensus_the_workflow_adds_their_majority_and_leads_with_it(imported: Path) -> None:
    from multirater.workflow_config import headline_label_set, label_set_names
    from multirater.data.consensus import majority_voters

    base = {"dataset": {"manifest": str(imported)}, "evaluation": {}}
    assert label_set_names(base) == [*TEST_SETS, "majority"]
    assert headline_label_set(base) == "majority"
    assert headline_label_set({**base, "evaluation": {"label_set": "test_ben"}}) == "test_ben"
    # a consensus, one label set, or a majority written by the import: nothing to derive
    assert majority_voters(["consensus", *TEST_SETS]) == []
    assert majority_voters(["test_anna"]) == []
    assert majority_voters([*TEST_SETS, "majority"]) == []


def config(lab: Path, imported: Path) -> dict:
    """The demo's design shrunk: two configurations (LSE_2), one epoch, the RSE of one model per annotator,
    one calibrator (isotonic, hard target) for the RSE, 5 resamples; evaluation.label_set left to its default."""
    return {
        "dataset": {"manifest": str(imported), "base_manifest": str(lab / "base" / "dataset.yaml")},
        "splits": {"val_fraction": 0.25, "seed": 1},
        "model": {"name": "tiny", "min_size": 64, "max_size": 64, "detections_per_img": 30},
        "pretrain": {"epochs": 1, "batch_size": 4},
        "training": {"epochs": 1, "patience": 1, "batch_size": 4, "augment": False},
        "sweep": {"grid": {"lr": [0.001, 0.0005]}},
        "selection": {"ls": 2, "rs": 1},
        "ensembles": {"sizes": [2]},
        "evaluation": {"bootstrap": 5, "seed": 0},
        "prediction": {"splits": ["test"], "batch_size": 4},
        "calibration": {"enabled": True, "methods": ["isotonic"], "targets": ["hard"],
                        "headline": {"approach": "rse", "method": "isotonic", "target": "hard"}},
        "resources": {"device": "cpu"},
    }


def expected_majority(imported: Path) -> dict[int, list[list[float]]]:
    """By hand (module docstring): per test image, A's boxes but the last, 0.5 px narrower."""
    ds = load_dataset(imported)
    return {image_id: [[x, y, w - 0.5, h] for x, y, w, h in ds.boxes("test_anna", image_id).tolist()[:-1]]
            for image_id in ds.label_set_image_ids("test_anna")}


@pytest.mark.slow
def test_two_annotators_without_consensus_run_end_to_end_against_their_majority(lab: Path, imported: Path,
                                                                              tmp_path: Path) -> None:
    work = tmp_path / "run"
    work.mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(lab, imported)))
    plan = planned_jobs(snakemake(work, path, "-n"))
    models, ensembles = 3 * 2, 2
    assert plan["majority"] == 1, plan
    # every model and ensemble against the majority and each annotator (the calibrated RSE's evaluation comes
    # after the ensembles' checkpoint)
    assert plan["evaluate_detections"] == (models + ensembles) * 3, plan

    log = snakemake(work, path, "--report", "results/report.html", "--report-after-run")
    r = work / "results"
    # the log says so
    assert (f"No consensus in {imported}: the majority of its test label sets (test_anna, test_ben; an object "
            "counts where more than half of them mark it) is the label set majority (results/data/majority.json, "
            "rule majority), the ground truth of the headline metrics, tables and figures") in log

    # the majority, as worked out by hand
    majority = json.loads((r / "data" / "majority.json").read_text())
    got: dict[int, list[list[float]]] = {}
    for a in majority["annotations"]:
        got.setdefault(a["image_id"], []).append(a["bbox"])
    expected = expected_majority(imported)
    assert sorted(im["id"] for im in majority["images"]) == sorted(expected)
    for image_id, boxes in expected.items():
        np.testing.assert_allclose(sorted(got.get(image_id, [])), sorted(boxes), atol=1e-9, err_msg=str(image_id))

    # every model and ensemble: the majority at the headline paths, each annotator's beside it
    ids = [line.split("\t")[0] for line in (r / "sweep" / "configs.tsv").read_text().splitlines()[1:]]
    subjects = ([f"models/{s}/{c}" for s in ["ls", *(f"rs-{a}" for a in ANNOTATORS)] for c in ids]
                + [f"ensembles/{k}/2" for k in ("lse", "rse")])
    for label_set, folder in (("majority", r / "metrics"), *((s, r / "metrics" / "label_sets" / s) for s in TEST_SETS)):
        for subject in subjects:
            metrics = json.loads((folder / f"{subject}.json").read_text())
            assert metrics["settings"]["label_set"] == label_set, (subject, label_set)
            assert metrics["n_images"] == TEST_IMAGES
    table = pd.read_csv(r / "tables" / "label_sets.csv", dtype={"config_id": str})
    assert list(dict.fromkeys(table.label_set)) == ["majority", *TEST_SETS]
    assert set(table[table.headline].label_set) == {"majority"}
    assert (r / "tables" / "calibration.csv").exists() and (r / "figures" / "fig3_reliability.png").exists()

    # the report says so on its front page
    report = (r / "report.html").read_text(errors="replace")
    assert "There is no consensus" in report
