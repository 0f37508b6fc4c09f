"""Bad input, end to end: each case runs the real `multirater` CLI on a broken file and expects a
non-zero exit, one clear error naming the file and the item or key, no traceback, and no output left
behind (nothing new anywhere under the case's folder)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
MULTIRATER = str(BIN / "multirater")
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if args and args[0] == "snakemake":  # the workflow's own config validation, at parse time
        command = [str(BIN / "snakemake"), *args[1:]]
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    else:
        command = [MULTIRATER, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small valid synthetic dataset; every case breaks a copy of it."""
    out = tmp_path_factory.mktemp("good") / "ds"
    done = run_cli("synth", "--out", str(out), "--seed", "3", "--images", "6", "--consensus-images", "2",
                   "--size", "64")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def trained_model(good_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch tiny detector (model folder + the splits and config it was trained with)."""
    root = tmp_path_factory.mktemp("model")
    splits = root / "splits.json"
    assert run_cli("split", "--dataset", str(good_dataset / "dataset.yaml"), "--out", str(splits)).returncode == 0
    (root / "sweep.yaml").write_text(yaml.safe_dump({
        "model": {"name": "tiny", "min_size": 64, "max_size": 64},
        "training": {"epochs": 1, "batch_size": 2, "seed": 1},
        "sweep": {"grid": {"lr": [0.001]}},
    }))
    done = run_cli("sweep", "--config", str(root / "sweep.yaml"), "--out", str(root / "configs.tsv"),
                   "--config-dir", str(root / "configs"))
    assert done.returncode == 0, done.stderr
    config = next(p for p in (root / "configs").glob("*.yaml") if p.stem != "pretrain")
    config.rename(root / "train.yaml")
    done = run_cli("train", "--dataset", str(good_dataset / "dataset.yaml"), "--splits", str(splits),
                   "--strategy", "ls", "--config", str(root / "train.yaml"), "--out", str(root / "model"),
                   "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "model" / "status.json").read_text())["status"] == "ok"
    return root


# --- helpers that break a copy of the dataset ------------------------------------------------------

def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


def edit_coco(ds: Path, name: str, change: Callable[[dict], None]) -> None:
    data = load(ds / name)
    change(data)
    save(ds / name, data)


def first_annotation(data: dict) -> dict:
    return data["annotations"][0]


@dataclass
class Case:
    """`make(root)` breaks something under root (the dataset copy is root/ds) and returns the CLI
    arguments; `names` must all appear in the error; `outputs` must not exist afterwards."""

    id: str
    make: Callable[[Path], list[str]]
    names: list[str]
    outputs: list[str] = field(default_factory=list)
    needs_model: bool = False  # root/model, root/splits.json, root/train.yaml: copies of trained_model


def split_cmd(root: Path) -> list[str]:
    return ["split", "--dataset", str(root / "ds" / "dataset.yaml"), "--out", str(root / "results" / "splits.json")]


def check_cmd(root: Path) -> list[str]:
    return ["check", "--dataset", str(root / "ds" / "dataset.yaml")]


def breaking(change: Callable[[Path], None], command: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        change(root / "ds")
        return command(root)

    return make


def _malformed_json(ds: Path) -> None:
    (ds / "rater1.json").write_text('{"images": [1, 2,, 3]}')


def _missing_image_file(ds: Path) -> None:
    (ds / "images" / "img_0002.png").unlink()


def _rater_missing_image(ds: Path) -> None:
    edit_coco(ds, "rater2.json", lambda d: d.update(
        images=[im for im in d["images"] if im["id"] != 4],
        annotations=[a for a in d["annotations"] if a["image_id"] != 4]))


def _duplicate_image_id(ds: Path) -> None:
    edit_coco(ds, "rater1.json", lambda d: d["images"].append(dict(d["images"][0], file_name="extra.png")))


def _duplicate_annotation_id(ds: Path) -> None:
    def change(d: dict) -> None:
        d["annotations"][1]["id"] = d["annotations"][0]["id"]
    edit_coco(ds, "rater1.json", change)


def _bbox(value: list[float]) -> Callable[[Path], None]:
    def change(ds: Path) -> None:
        edit_coco(ds, "rater1.json", lambda d: first_annotation(d).update(bbox=value))
    return change


def _nan_bbox(ds: Path) -> None:
    data = load(ds / "rater1.json")
    first_annotation(data)["bbox"] = [float("nan"), 5.0, 4.0, 4.0]
    (ds / "rater1.json").write_text(json.dumps(data))  # json writes NaN, as some tools do


def _unknown_category(ds: Path) -> None:
    edit_coco(ds, "rater1.json", lambda d: first_annotation(d).update(category_id=99))


def _consensus_image_in_rater_file(ds: Path) -> None:
    consensus = load(ds / "consensus.json")
    edit_coco(ds, "rater1.json", lambda d: d["images"].append(dict(consensus["images"][0])))


def _manifest_unknown_key(ds: Path) -> None:
    manifest = yaml.safe_load((ds / "dataset.yaml").read_text())
    manifest["annotators"] = {"a": "a.json"}
    (ds / "dataset.yaml").write_text(yaml.safe_dump(manifest))


def _manifest_missing_rater_file(ds: Path) -> None:
    (ds / "rater2.json").unlink()


def _manifest_raters_wrong_type(ds: Path) -> None:
    manifest = yaml.safe_load((ds / "dataset.yaml").read_text())
    manifest["raters"] = ["rater1.json", "rater2.json"]
    (ds / "dataset.yaml").write_text(yaml.safe_dump(manifest))


def _missing_image_keys(ds: Path) -> None:
    edit_coco(ds, "rater1.json", lambda d: d["images"][2].pop("width"))


CASES: list[Case] = [
    Case("dataset-manifest-missing", lambda root: ["split", "--dataset", str(root / "nowhere" / "dataset.yaml"),
                                                   "--out", str(root / "results" / "splits.json")],
         ["dataset.yaml"], ["results/splits.json"]),
    Case("dataset-manifest-unknown-key", breaking(_manifest_unknown_key, split_cmd),
         ["dataset.yaml", "annotators"], ["results/splits.json"]),
    Case("dataset-manifest-raters-not-a-mapping", breaking(_manifest_raters_wrong_type, split_cmd),
         ["dataset.yaml", "raters"], ["results/splits.json"]),
    Case("dataset-rater-file-missing", breaking(_manifest_missing_rater_file, split_cmd),
         ["rater2.json"], ["results/splits.json"]),
    Case("dataset-malformed-json", breaking(_malformed_json, split_cmd), ["rater1.json", "line 1"],
         ["results/splits.json"]),
    Case("dataset-missing-image-file", breaking(_missing_image_file, check_cmd), ["rater1.json", "image 2", "img_0002.png"]),
    Case("dataset-rater-missing-an-image", breaking(_rater_missing_image, split_cmd), ["rater2.json", "image 4"],
         ["results/splits.json"]),
    Case("dataset-duplicate-image-id", breaking(_duplicate_image_id, split_cmd), ["rater1.json", "image 1", "duplicate"],
         ["results/splits.json"]),
    Case("dataset-duplicate-annotation-id", breaking(_duplicate_annotation_id, split_cmd),
         ["rater1.json", "annotation 1", "duplicate"],
         ["results/splits.json"]),
    Case("dataset-bbox-zero-width", breaking(_bbox([5.0, 5.0, 0.0, 4.0]), split_cmd), ["rater1.json", "annotation 1", "bbox"],
         ["results/splits.json"]),
    Case("dataset-bbox-negative-height", breaking(_bbox([5.0, 5.0, 4.0, -2.0]), split_cmd),
         ["rater1.json", "annotation 1", "bbox"], ["results/splits.json"]),
    Case("dataset-bbox-outside-image", breaking(_bbox([60.0, 60.0, 30.0, 30.0]), split_cmd),
         ["rater1.json", "annotation 1", "bbox"], ["results/splits.json"]),
    Case("dataset-bbox-nan", breaking(_nan_bbox, split_cmd), ["rater1.json", "annotation 1", "bbox"], ["results/splits.json"]),
    Case("dataset-bbox-not-four-numbers", breaking(_bbox([5.0, 5.0, 4.0]), split_cmd), ["rater1.json", "annotation 1", "bbox"],
         ["results/splits.json"]),
    Case("dataset-unknown-category", breaking(_unknown_category, split_cmd), ["rater1.json", "annotation 1", "99"],
         ["results/splits.json"]),
    Case("dataset-consensus-image-in-rater-file", breaking(_consensus_image_in_rater_file, split_cmd),
         ["consensus", "image 7"], ["results/splits.json"]),
    Case("dataset-image-missing-width", breaking(_missing_image_keys, split_cmd), ["rater1.json", "image 3", "width"],
         ["results/splits.json"]),
]


# --- predictions (detections files) read by evaluate and fuse -----------------------------------------

def detections(**change: object) -> dict:
    """A valid detections file on the consensus images 7 and 8, with its first detection changed."""
    data = {"format": "multirater-detections", "image_ids": [7, 8],
            "detections": [{"image_id": 7, "category_id": 1, "bbox": [10.0, 10.0, 6.0, 6.0], "score": 0.9},
                           {"image_id": 8, "category_id": 1, "bbox": [20.0, 20.0, 5.0, 5.0], "score": 0.4}],
            "meta": {}}
    data["detections"][0].update(change)
    for key in [k for k, v in data["detections"][0].items() if v is None]:
        del data["detections"][0][key]
    return data


def evaluate_on(pred: dict | str) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        path = root / "pred.json"
        path.write_text(pred if isinstance(pred, str) else json.dumps(pred))
        return ["evaluate", "--gt", str(root / "ds" / "consensus.json"), "--pred", str(path),
                "--out", str(root / "results" / "metrics.json"), "--bootstrap", "0"]
    return make


def fuse_with(pred: dict) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        (root / "good.json").write_text(json.dumps(detections()))
        (root / "pred.json").write_text(json.dumps(pred))
        return ["fuse", "--out", str(root / "results" / "fused.json"), str(root / "good.json"),
                str(root / "pred.json")]
    return make


PREDICTION_CASES = [
    Case("predictions-malformed-json", evaluate_on('{"format": "multirater-detections", "image_ids": [7,'),
         ["pred.json", "line 1"], ["results/metrics.json"]),
    Case("predictions-detection-missing-score", evaluate_on(detections(score=None)), ["pred.json", "score"],
         ["results/metrics.json"]),
    Case("predictions-detection-missing-bbox", evaluate_on(detections(bbox=None)), ["pred.json", "bbox"],
         ["results/metrics.json"]),
    Case("predictions-nan-score", evaluate_on(detections(score=math.nan)), ["pred.json", "score"],
         ["results/metrics.json"]),
    Case("predictions-score-above-one", evaluate_on(detections(score=1.5)), ["pred.json", "score"],
         ["results/metrics.json"]),
    Case("predictions-negative-score", evaluate_on(detections(score=-0.2)), ["pred.json", "score"],
         ["results/metrics.json"]),
    Case("predictions-negative-box", evaluate_on(detections(bbox=[10.0, 10.0, -6.0, 6.0])), ["pred.json", "bbox"],
         ["results/metrics.json"]),
    Case("predictions-fuse-score-above-one", fuse_with(detections(score=2.0)), ["pred.json", "score"],
         ["results/fused.json"]),
]


# --- checkpoints (predict reads best.pt; train reads --base) ---------------------------------------------

def predict_cmd(root: Path) -> list[str]:
    return ["predict", "--model", str(root / "model"), "--dataset", str(root / "ds" / "dataset.yaml"),
            "--splits", str(root / "splits.json"), "--images", "test", "--out", str(root / "results" / "pred.json"),
            "--threads", "1"]


def train_cmd(root: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", str(root / "ds" / "dataset.yaml"), "--splits", str(root / "splits.json"),
            "--strategy", "ls", "--config", str(root / "train.yaml"), "--out", str(root / "results" / "model"),
            "--threads", "1", *extra]


def _truncate_checkpoint(root: Path) -> None:
    best = root / "model" / "best.pt"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])


def _checkpoint_of_other_architecture(root: Path) -> None:
    """best.pt claims to be a resnet18_fpn but holds the tiny detector's weights."""
    import torch

    best = root / "model" / "best.pt"
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    ckpt["meta"]["model_settings"]["name"] = "resnet18_fpn"
    torch.save(ckpt, best)


def _train_config_other_architecture(root: Path) -> None:
    config = yaml.safe_load((root / "train.yaml").read_text())
    config["model"]["name"] = "resnet18_fpn"
    (root / "train.yaml").write_text(yaml.safe_dump(config))


def then(change: Callable[[Path], None], command: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        change(root)
        return command(root)
    return make


CHECKPOINT_CASES = [
    Case("checkpoint-missing", then(lambda root: (root / "model" / "best.pt").unlink(), predict_cmd),
         ["best.pt"], ["results/pred.json"], needs_model=True),
    Case("checkpoint-truncated", then(_truncate_checkpoint, predict_cmd), ["best.pt"], ["results/pred.json"],
         needs_model=True),
    Case("checkpoint-wrong-architecture", then(_checkpoint_of_other_architecture, predict_cmd), ["best.pt"],
         ["results/pred.json"], needs_model=True),
    Case("checkpoint-base-missing", lambda root: train_cmd(root, "--base", str(root / "nowhere.pt")),
         ["nowhere.pt"], ["results/model"], needs_model=True),
    Case("checkpoint-base-wrong-architecture",
         then(_train_config_other_architecture, lambda root: train_cmd(root, "--base", str(root / "model" / "best.pt"))),
         ["best.pt", "architecture"], ["results/model"], needs_model=True),
]


# --- importers given another format's files ------------------------------------------------------------

def import_cmd(fmt: str, labels: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        folder = labels(root)
        return ["import", "--format", fmt, "--images", str(root / "ds" / "images"), "--labels", str(folder),
                "--out", str(root / "results" / "imported")]
    return make


def _napari_style_csv(root: Path) -> Path:
    (root / "labels").mkdir()
    (root / "labels" / "img_0001.csv").write_text("index,axis-0,axis-1\n0,1.0,2.0\n")
    return root / "labels"


def _coco_as_multiorg(root: Path) -> Path:
    (root / "labels").mkdir()
    shutil.copy(root / "ds" / "rater1.json", root / "labels" / "img_0001_Annotator_A.json")
    return root / "labels"


def _coco_as_napari(root: Path) -> Path:
    (root / "labels" / "raterA").mkdir(parents=True)
    shutil.copy(root / "ds" / "rater1.json", root / "labels" / "raterA" / "img_0001.json")
    return root / "labels"


IMPORT_CASES = [
    Case("import-csv-wrong-format", import_cmd("csv", _napari_style_csv), ["img_0001.csv", "x1"],
         ["results/imported"]),
    Case("import-multiorg-given-coco", import_cmd("multiorg", _coco_as_multiorg),
         ["img_0001_Annotator_A.json", "annotations"], ["results/imported"]),
    Case("import-napari-given-coco", import_cmd("napari-organoid-counter", _coco_as_napari),
         ["img_0001.json", "annotations"], ["results/imported"]),
]


# --- the workflow's config, validated when snakemake parses the Snakefile ---------------------------------

def workflow_with(config: str) -> Callable[[Path], list[str]]:
    """`snakemake -n` in root/run with the repository's config plus the broken overlay."""
    def make(root: Path) -> list[str]:
        (root / "bad.yaml").write_text(config.replace("ROOT", str(root)))
        return ["snakemake", "-n", "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(root / "results"),
                "--configfile", str(REPO / "config" / "config.yaml"), str(root / "bad.yaml")]
    return make


CONFIG_CASES = [
    Case("config-unknown-key", workflow_with("trianing: {epochs: 2}\n"), ["trianing", "unknown"]),
    Case("config-wrong-type", workflow_with("training: {epochs: three}\n"), ["training.epochs", "integer"]),
    Case("config-ensemble-size-not-divisible-by-raters", workflow_with("ensembles: {sizes: [2, 3]}\n"),
         ["ensembles.sizes", "3"]),
    Case("config-more-models-selected-than-configurations", workflow_with("selection: {ls: 9, rs: 2}\n"),
         ["selection.ls", "9"]),
    Case("config-dataset-missing", workflow_with("dataset: {manifest: ROOT/nowhere/dataset.yaml}\n"),
         ["nowhere/dataset.yaml", "not found"]),
]

CASES += PREDICTION_CASES + CHECKPOINT_CASES + IMPORT_CASES + CONFIG_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error(case: Case, good_dataset: Path, tmp_path: Path,
                                      request: pytest.FixtureRequest) -> None:
    root = tmp_path / "case"
    shutil.copytree(good_dataset, root / "ds")
    (root / "results").mkdir()
    if case.needs_model:
        model = request.getfixturevalue("trained_model")
        shutil.copytree(model / "model", root / "model")
        for name in ("splits.json", "train.yaml"):
            shutil.copy(model / name, root / name)
    args = case.make(root)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    done = run_cli(*args, cwd=root)

    assert done.returncode != 0, f"exit 0 on bad input; stdout:\n{done.stdout}"
    assert "Traceback" not in done.stderr, done.stderr
    said = done.stdout + done.stderr if args[0] == "snakemake" else done.stderr
    lines = [line for line in said.splitlines() if line.strip()]
    if args[0] == "snakemake":  # snakemake frames the message in its own lines
        assert not (root / "results" / "results").exists(), "the workflow wrote results despite a bad config"
    else:
        prefix = f"multirater {args[0]}: error: "
        assert lines and all(line.startswith(prefix) for line in lines), f"not just error lines:\n{done.stderr}"
    # one message names the file and the item (validators may add further problems they found)
    naming = [line for line in lines if all(name in line for name in case.names)]
    assert naming, f"no error names all of {case.names}:\n{said}"
    for out in case.outputs:
        assert not (root / out).exists(), f"partial output {out} left behind: {list((root / out).rglob('*'))}"
    after = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert after == before, f"files appeared or vanished: {set(after) ^ set(before)}"
