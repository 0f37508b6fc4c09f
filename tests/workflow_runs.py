"""Expensive workflow runs, made once per test session and shared by the tests that check their outputs.

A shared run is never changed: a test that reruns, deletes or adds something works on its own copy
(``copy_run``), which Snakemake sees as the same finished run (the copy keeps every file's modification time
and the run's .snakemake metadata). Under pytest-xdist the tests of one shared run go to one worker
(conftest.py: ``xdist_group`` by the session and module fixtures a test uses), so each run is made once.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml


@dataclass(frozen=True)
class WorkflowRun:
    """A finished run: its working folder (``results/`` inside) and the config it ran with."""

    work: Path
    config: dict

    def copy(self, to: Path) -> tuple[Path, Path]:
        """A copy of the run in ``to/run`` with its config in ``to/config.yaml``: (work, config path)."""
        return copy_run(self.work, to / "run"), write_yaml(to / "config.yaml", self.config)


@dataclass(frozen=True)
class AppliedRun(WorkflowRun):
    """A finished run of the `apply` target, with the output of the dry runs made before it, by target."""

    plans: dict[str, str]


def copy_run(work: Path, to: Path) -> Path:
    """``work`` copied to ``to`` with modification times (copy2), so Snakemake finds it up to date."""
    shutil.copytree(work, to, symlinks=True, copy_function=shutil.copy2)
    return to


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _deep_copy(data: dict) -> dict:
    return json.loads(json.dumps(data))


@pytest.fixture(scope="session")
def demo_shaped_run(tmp_path_factory: pytest.TempPathFactory) -> WorkflowRun:
    """The reduced demo of test_workflow.CONFIG, run to the end with its report written after the run
    (as `make demo` does): results/ and results/report.html."""
    from test_workflow import CONFIG, snakemake

    root = tmp_path_factory.mktemp("demo_shaped")
    work = root / "run"
    work.mkdir()
    config = write_yaml(root / "config.yaml", _deep_copy(CONFIG))
    snakemake(work, config, "--report", "results/report.html", "--report-after-run")
    return WorkflowRun(work, _deep_copy(CONFIG))


@pytest.fixture(scope="session")
def apply_run(tmp_path_factory: pytest.TempPathFactory) -> AppliedRun:
    """`snakemake apply` of test_apply.SMALL on two new synthetic images (run/new), after dry runs of the
    `apply` target and of the whole workflow, whose output it keeps."""
    import subprocess

    from test_apply import BIN, SMALL
    from test_workflow import snakemake

    root = tmp_path_factory.mktemp("apply")
    work = root / "run"
    work.mkdir()
    subprocess.run([str(BIN / "multirater"), "synth", "--out", str(root / "synth"), "--seed", "7",
                    "--images", "2", "--consensus-images", "1", "--raters", "1", "--size", "64"], check=True,
                   capture_output=True)
    (root / "synth" / "images").rename(work / "new")
    config = write_yaml(root / "config.yaml", _deep_copy(SMALL))
    plans = {"apply": snakemake(work, config, "-n", "apply"), "all": snakemake(work, config, "-n")}
    snakemake(work, config, "apply")
    return AppliedRun(work, _deep_copy(SMALL), plans)
