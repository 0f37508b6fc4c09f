"""A file or folder a setting names (model.base_checkpoint, dataset.manifest, dataset.base_manifest,
apply.images) that is not there stops the workflow at parse time with one line naming the setting, not
Snakemake's MissingInputException about a path once jobs are planned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multirater.cli import main
from multirater.config import SCHEMA_PATH
from multirater.config.schema import validate
from multirater.workflow_config import check_setting_files, load_workflow_config
from multirater.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    assert main(["synth", "--out", str(folder / "ds"), "--images", "4", "--consensus-images", "2",
                 "--size", "64"]) == 0
    return folder / "ds" / "dataset.yaml"


@pytest.mark.parametrize("key, kind", [
    ("dataset.manifest", "file"), ("dataset.base_manifest", "file"), ("model.base_checkpoint", "file"),
    ("apply.images", "folder"),
])
def test_a_missing_file_of_a_setting_is_one_error_naming_the_setting(key: str, kind: str, tmp_path: Path) -> None:
    section, name = key.split(".")
    missing = str(tmp_path / "not-here")
    with pytest.raises(UserError) as error:
        check_setting_files(validate({section: {name: missing}}, SCHEMA_PATH))
    assert str(error.value).startswith(f"config: {key}: {kind} {missing} not found (")


def test_the_kind_matters_and_present_files_pass(tmp_path: Path, dataset: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "goat.bin").write_bytes(b"weights")
    check_setting_files(validate({"dataset": {"manifest": str(dataset)}, "model": {"base_checkpoint": str(
        tmp_path / "goat.bin")}, "apply": {"images": str(tmp_path / "images")}}, SCHEMA_PATH))
    with pytest.raises(UserError, match=r"^config: model\.base_checkpoint: file .* is a folder, not a file"):
        check_setting_files(validate({"model": {"base_checkpoint": str(tmp_path / "images")}}, SCHEMA_PATH))
    with pytest.raises(UserError, match=r"^config: apply\.images: folder .*goat\.bin not found"):
        check_setting_files(validate({"apply": {"images": str(tmp_path / "goat.bin")}}, SCHEMA_PATH))
    # the cross-key rules alone (as the tests of those rules use them) do not look at the disk
    config = {"dataset": {"manifest": str(dataset)}, "model": {"base_checkpoint": str(tmp_path / "absent.bin")},
              "sweep": {"grid": {"lr": [0.001, 0.0005]}}, "selection": {"ls": 2, "rs": 1},
              "ensembles": {"sizes": [2]}}
    load_workflow_config(config, SCHEMA_PATH)
    with pytest.raises(UserError, match=r"^config: model\.base_checkpoint: file .*absent\.bin not found"):
        load_workflow_config(config, SCHEMA_PATH, check_files=True)


def test_the_workflow_stops_at_parse_time_naming_the_missing_base_checkpoint(tmp_path: Path, dataset: Path) -> None:
    # config/multiorg.yaml's case: the data imported, the GOAT weights not (yet) at model.base_checkpoint
    shipped = yaml.safe_load((REPO / "config" / "multiorg.yaml").read_text())
    shipped["dataset"]["manifest"] = str(dataset)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(shipped))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(BIN / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                           "--configfile", str(config)], capture_output=True, text=True, env=env, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode != 0
    assert ("config: model.base_checkpoint: file weights/goat.bin not found (the weights every model is fine-tuned "
            "from, e.g. the GOAT weights (Bremer et al. 2022; config/multiorg.yaml, step 3)") in log, log[-2000:]
    assert "MissingInputException" not in log and "Building DAG" not in log
