"""Where a run ran: a job's environment, a checkout's git state, run.json's grouping of trainings, and the
pin of resources.reproducible, each against an independent reference (git itself, a fresh torch process,
hand-made records)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from multirater.core.errors import UserError
from multirater.core.kernels import REPRODUCIBLE_KERNELS, kernels_pinned, pin_cpu_kernels
from multirater.core.provenance import (
    PROVENANCE_COLUMNS,
    git_state,
    group_environments,
    provenance_columns,
    run_record,
)
from multirater.io.run_file import read_run, write_run

REPO = Path(__file__).resolve().parents[1]


def git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_git_state_of_a_checkout_as_git_says(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "first")
    assert git_state(repo) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "new.txt").write_text("untracked files are not changes to the code that ran\n")
    assert git_state(repo)["dirty"] is False
    (repo / "a.txt").write_text("two\n")
    assert git_state(repo)["dirty"] is True
    # a folder inside a checkout is not a checkout of its own (a venv inside a clone), nor is a plain folder
    (repo / "sub").mkdir()
    assert git_state(repo / "sub") == {"commit": None, "dirty": None}
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_environment_reports_the_dispatch_torch_really_uses():
    # a fresh process whose dispatch is lowered from outside: the record must say what torch does there
    code = ("import json, torch; from multirater.core.provenance import environment; torch.set_num_threads(1); "
            "e = environment('cpu'); e['truth'] = torch.backends.cpu.get_cpu_capability(); print(json.dumps(e))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["cpu_capability"] == record["truth"] == "DEFAULT"
    assert record["threads"] == 1 and record["device"] == "cpu" and record["gpu"] is None
    assert record["kernels"] == {"ATEN_CPU_CAPABILITY": "default"}
    import importlib.metadata

    import torch
    import torchvision

    assert (record["versions"]["torch"], record["versions"]["torchvision"]) == (torch.__version__,
                                                                                torchvision.__version__)
    for name in ("numpy", "snakemake"):
        assert record["versions"][name] == importlib.metadata.version(name)
    assert record["commit"] == git_state(REPO)["commit"]


def env(capability="AVX512", host="node1", commit="c1", kernels=None):
    return {"host": host, "commit": commit, "dirty": False, "cpu": "AMD EPYC", "cpu_capability": capability,
            "threads": 1, "device": "cpu", "gpu": None, "kernels": kernels or {},
            "versions": {"snakemake": "9", "torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6",
                         "multirater": "0.1.0"}}


def test_trainings_on_identical_nodes_are_one_environment_and_others_are_mixed():
    groups = group_environments({"ls/a": env(host="node1"), "ls/b": env(host="node2"), "pretrain": env()})
    assert len(groups) == 1 and groups[0]["hosts"] == ["node1", "node2"]
    assert groups[0]["jobs"] == ["ls/a", "ls/b", "pretrain"]
    groups = group_environments({"ls/a": env(), "ls/b": env("AVX2"), "ls/c": env(), "old": None})
    assert [g["jobs"] for g in groups] == [["ls/a", "ls/c"], ["ls/b"], ["old"]]
    assert groups[1]["environment"]["cpu_capability"] == "AVX2" and groups[2]["environment"] is None


def test_run_record_round_trip_and_flat_columns(tmp_path):
    record = run_record({"ls/a": env(), "ls/b": env("AVX2", kernels=dict(REPRODUCIBLE_KERNELS))}, REPO)
    assert record["mixed"] is True and record["commit"] == git_state(REPO)["commit"]
    write_run(tmp_path / "run.json", record)
    assert read_run(tmp_path / "run.json") == json.loads(json.dumps(record))
    row = provenance_columns(record)
    assert list(row) == PROVENANCE_COLUMNS
    # facts the trainings share are one value; those they differ on list each, in group order
    assert row["torch"] == "2.14.1" and row["threads"] == 1 and row["mixed"] is True
    assert row["cpu_capability"] in ("AVX512; AVX2", "AVX2; AVX512")
    assert "native" in row["kernels"] and "MKL_CBWR=AVX2,STRICT" in row["kernels"]
    assert row["snakemake"] == record["workflow"]["versions"]["snakemake"]


@pytest.mark.parametrize("data, message", [
    ({"format": "other"}, "not a run record"),
    ({"format": "multirater-run", "workflow": {}, "trainings": {}, "mixed": False}, "trainings: missing or not a list"),
    ({"format": "multirater-run", "workflow": {}, "trainings": [{"jobs": []}], "mixed": False},
     r"trainings\[0\]: must be"),
])
def test_a_bad_run_record_is_one_error_naming_the_file(tmp_path, data, message):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as err:
        read_run(path)
    assert str(path) in str(err.value)


def test_pin_sets_every_variable_and_overrides_a_lower_setting():
    environ = {"ATEN_CPU_CAPABILITY": "default", "PATH": "/bin"}
    changed = pin_cpu_kernels(environ)
    assert changed == REPRODUCIBLE_KERNELS  # ATEN's "default" is replaced too
    assert environ == {"PATH": "/bin", **REPRODUCIBLE_KERNELS} and kernels_pinned(environ)
    assert pin_cpu_kernels(environ) == {}
    assert not kernels_pinned({})
