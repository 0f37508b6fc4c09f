"""SLURM tests run only against a real cluster: `make test-slurm` (MULTIRATER_SLURM=1, after
tests/slurm/up.sh). Under plain `make test` they are skipped, with the reason; modules that set
`NEEDS_CLUSTER = False` (unit tests of the pre-flight on canned `sinfo` output) run everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def cluster_answer(timeout: float = 20) -> str | None:
    """None when `sinfo` reaches a controller, else why not."""
    if shutil.which("sinfo") is None:
        return "sinfo is not installed (bring a cluster up with tests/slurm/up.sh)"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {timeout:g} s"
    if done.returncode != 0:
        return f"sinfo failed: {done.stderr.strip() or done.returncode}"
    return None


def needs_cluster(item: pytest.Item) -> bool:
    """Tests here need a cluster unless their module says `NEEDS_CLUSTER = False` (e.g. the
    pre-flight's unit tests on canned `sinfo` output, which run under plain `make test`)."""
    module = getattr(item, "module", None)
    return HERE in Path(str(item.fspath)).parents and getattr(module, "NEEDS_CLUSTER", True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if needs_cluster(item)]
    for item in mine:
        item.add_marker(pytest.mark.slurm)
    if not mine or os.environ.get("MULTIRATER_SLURM") == "1":
        return
    problem = cluster_answer(timeout=5)  # only for the skip's reason: keep `make test` quick
    reason = (
        f"no SLURM cluster reachable ({problem}); run `make test-slurm` after tests/slurm/up.sh"
        if problem
        else "SLURM tests run only with MULTIRATER_SLURM=1: `make test-slurm`"
    )
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """With MULTIRATER_SLURM=1 an unreachable cluster is a failure, not a skip."""
    problem = cluster_answer()
    if problem:
        pytest.fail(f"MULTIRATER_SLURM=1 but {problem}", pytrace=False)
