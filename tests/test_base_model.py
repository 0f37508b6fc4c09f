"""The independent base model: without a base checkpoint, the pretrain job learns from other images than the
experiment's (a base dataset labelled by the simulated pre-annotation detector), never from its labels."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from multirater.cli import main
from multirater.data.dataset import load_dataset

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CONFIG = {
    "dataset": {"manifest": None, "synthetic": {"seed": 3, "images": 12, "consensus_images": 4, "raters": 2,
                                                "size": 96, "base_images": 10}},
    "splits": {"val_fraction": 0.25, "seed": 1},
    "model": {"name": "tiny", "min_size": 96, "max_size": 96},
    "sweep": {"grid": {"lr": [0.001, 0.0005]}},
    "selection": {"ls": 2, "rs": 1},
    "ensembles": {"sizes": [2]},
    "resources": {"device": "cpu"},
}


def pixel_hashes(manifest: Path, image_ids=None) -> set[str]:
    """SHA-256 of the decoded pixels of a dataset's images (all, or ``image_ids``): the same picture under
    another name or in another file format has the same hash."""
    dataset = load_dataset(manifest)
    ids = dataset.images if image_ids is None else image_ids
    hashes = set()
    for image_id in ids:
        with Image.open(dataset.images[image_id].path) as im:
            hashes.add(hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
    return hashes


def snakemake(workdir: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(config), "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_pretrain_trains_on_images_the_experiment_never_uses(tmp_path):
    """The pretrain job's dataset and split are the base dataset's; its training and validation images share
    no pixels with any image of the experiment (multi-rater or consensus)."""
    plan = snakemake(tmp_path, "-n", "-p", "results/models/pretrain/status.json")
    pretrain = next(line for line in plan.splitlines() if "multirater pretrain" in line)
    assert "--dataset results/data/base/dataset.yaml --splits results/data/base_splits.json" in pretrain
    assert "results/data/synthetic" not in pretrain and "results/data/splits.json" not in pretrain

    snakemake(tmp_path, "results/data/base_splits.json", "results/data/splits.json")
    base, experiment = tmp_path / "results/data/base/dataset.yaml", tmp_path / "results/data/synthetic/dataset.yaml"
    splits = json.loads((tmp_path / "results/data/base_splits.json").read_text())
    assert len(splits["train"]) + len(splits["val"]) == 10 and splits["test"] == []
    used_by_pretrain = pixel_hashes(base, splits["train"] + splits["val"])
    assert len(used_by_pretrain) == 10  # ten distinct pictures
    experiment_images = pixel_hashes(experiment)
    assert len(experiment_images) == 16
    assert not used_by_pretrain & experiment_images
    assert load_dataset(base).rater_names == ["detector"]


def test_base_dataset_is_apart_from_every_seed_and_deterministic(tmp_path):
    """Other pictures than the experiment's of the same and of neighbouring seeds; the same arguments give
    the same files."""
    assert main(["synth", "--labels", "detector", "--out", str(tmp_path / "base"), "--seed", "1", "--images", "4",
                 "--size", "64"]) == 0
    assert main(["synth", "--labels", "detector", "--out", str(tmp_path / "again"), "--seed", "1", "--images", "4",
                 "--size", "64"]) == 0
    base = tmp_path / "base" / "dataset.yaml"
    for name in ("detector.json", "images/base_0003.png"):
        assert (tmp_path / "base" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    for seed in (0, 1, 2):
        out = tmp_path / f"exp{seed}"
        assert main(["synth", "--out", str(out), "--seed", str(seed), "--images", "4", "--consensus-images", "2",
                     "--size", "64"]) == 0
        assert not pixel_hashes(base) & pixel_hashes(out / "dataset.yaml")
    coco = json.loads((tmp_path / "base" / "detector.json").read_text())
    assert coco["annotations"] and {a["attributes"]["source"] for a in coco["annotations"]} == {"pretrained"}
    assert not (tmp_path / "base" / "consensus.json").exists()


def test_detector_labels_are_the_proposals_the_raters_saw():
    """A base image's labels are the simulated detector's proposals: a rater who keeps every proposal as
    drawn (threshold below every viability, no redraw, nothing added) labels the same boxes."""
    from multirater.data.synthetic.base import BASE_STREAM, DETECTOR_LABELS
    from multirater.data.synthetic.generation import synthesize_image
    from multirater.data.synthetic.raters import RandomStyle, RaterStyle, SystematicStyle

    keeps_all = RaterStyle(SystematicStyle(threshold=-10.0, tightness=0.3, redraw=0.0),
                           RandomStyle(perception_sd=0.0, miss_rate=1.0, spurious=0.0, jitter=0.0))
    for index in range(3):
        sample = synthesize_image(4, index, 128, {"a": DETECTOR_LABELS, "b": keeps_all}, stream=BASE_STREAM)
        boxes_a = [box.tolist() for box, _, _ in sample.annotations["a"]]
        assert boxes_a == [box.tolist() for box, _, _ in sample.annotations["b"]]
        assert 0 < len(boxes_a) <= len(sample.organoids)


@pytest.mark.parametrize("dataset, model, item, message", [
    ({"manifest": "DATA"}, {}, "model.base_checkpoint",
     "is null with your own dataset (dataset.manifest), and the base model must never learn the experiment's labels"),
    ({"manifest": "DATA", "base_manifest": "DATA"}, {}, "dataset.base_manifest",
     "is the experiment's own dataset"),
    ({"base_manifest": "DATA"}, {"base_checkpoint": "w.pt"}, "dataset.base_manifest", "give one of the two"),
])
def test_where_the_base_comes_from_is_checked(tiny_dataset, dataset, model, item, message):
    from multirater.config import SCHEMA_PATH
    from multirater.workflow_config import load_workflow_config
    from multirater.core.errors import UserError

    config = json.loads(json.dumps(CONFIG))
    config["dataset"].update({k: str(tiny_dataset) if v == "DATA" else v for k, v in dataset.items()})
    config["model"].update(model)
    with pytest.raises(UserError) as err:
        load_workflow_config(config, SCHEMA_PATH)
    assert err.value.item == item and message in err.value.problem


def test_your_own_data_with_a_base_dataset_or_checkpoint_is_accepted(tiny_dataset, tmp_path):
    from multirater.config import SCHEMA_PATH
    from multirater.workflow_config import load_workflow_config

    other = tmp_path / "other"
    other.mkdir()
    for base in ({"dataset": {"base_manifest": str(other / "dataset.yaml")}},
                 {"model": {"base_checkpoint": str(tmp_path / "goat.bin")}}):
        config = json.loads(json.dumps(CONFIG))
        config["dataset"]["manifest"] = str(tiny_dataset)
        for section, values in base.items():
            config[section].update(values)
        checked, raters, _ = load_workflow_config(config, SCHEMA_PATH)
        assert raters == ["rater1", "rater2"]
