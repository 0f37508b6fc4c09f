"""Where a run ran: the facts that decide whether its numbers can be reproduced elsewhere.

Two records, both plain JSON-able dicts:

- :func:`environment`: one process's machine and software (host, CPU, the CPU capability torch dispatches
  to, threads, device and GPU, the kernel-dispatch variables set, package versions, the git commit). A
  training job writes it into its model's ``status.json``, so on a cluster it says which node trained the
  model, not where the workflow was started.
- :func:`run_record`: ``results/run.json`` of a workflow run: the checkout's commit, the machine that wrote
  the record, and the training environments of its models, grouped (``mixed`` when they differ).

:func:`provenance_columns` flattens a ``run.json`` into one table row (the evidence's ``cells.csv``; any
study that summarizes workflow runs). torch is imported only where its facts are asked for.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from multirater.core.kernels import KERNEL_VARIABLES

# The checkout this package lies in (workflow/multirater/core/provenance.py -> the repository root).
REPOSITORY = Path(__file__).resolve().parents[3]
PACKAGES = ("snakemake", "torch", "torchvision", "numpy", "multirater")
# The facts that make two trainings' numbers comparable; the host is recorded but two identical nodes
# are one environment.
COMPARED = ("commit", "dirty", "cpu", "cpu_capability", "threads", "device", "gpu", "kernels", "versions")
RUN_FORMAT = "multirater-run"


def versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["multirater"] is None:  # run from a checkout without installing it
        from multirater import __version__

        out["multirater"] = __version__
    return out


def git_state(folder: str | Path = REPOSITORY) -> dict[str, Any]:
    """``{"commit": <sha>, "dirty": <tracked files changed>}`` of the git checkout ``folder``; both None
    when it is not one (an installed package, no git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    # only the checkout itself: not a repository that merely contains ``folder`` (a venv inside a clone)
    if top is None or Path(top.strip()).resolve() != Path(folder).resolve():
        return {"commit": None, "dirty": None}
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if changes is None else bool(changes.strip())}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any = None, repository: str | Path = REPOSITORY) -> dict[str, Any]:
    """This process's machine and software, for ``device`` (a torch device or its name; None: the CPU).
    Imports torch: call it where torch runs (a training job), after its threads are set."""
    import torch
    import torchvision

    device = torch.device(device or "cpu")
    gpu = None
    if device.type == "cuda" and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(device)
    return {
        "host": platform.node(),
        **git_state(repository),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": device.type,
        "gpu": gpu,
        "kernels": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
        # the modules' own versions: they carry the build (+cu130, +cpu) that the package metadata may not
        "versions": {**versions(), "torch": torch.__version__, "torchvision": torchvision.__version__},
    }


def group_environments(environments: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Group jobs (name -> its :func:`environment`, None when it recorded none) by the facts of
    :data:`COMPARED`: one entry per distinct environment, largest group first, with its hosts and jobs."""
    groups: dict[str, dict[str, Any]] = {}
    for name, env in sorted(environments.items()):
        facts = None if env is None else {k: env.get(k) for k in COMPARED}
        key = repr(facts)
        group = groups.setdefault(key, {"environment": facts, "hosts": [], "jobs": []})
        group["jobs"].append(name)
        host = None if env is None else env.get("host")
        if host is not None and host not in group["hosts"]:
            group["hosts"].append(host)
    return sorted(groups.values(), key=lambda g: (-len(g["jobs"]), g["jobs"][0]))


def run_record(trainings: dict[str, dict[str, Any] | None], repository: str | Path = REPOSITORY) -> dict[str, Any]:
    """``run.json``: the checkout's commit, the machine writing the record, and the trainings
    (job name -> the environment its status.json recorded) grouped by environment. ``mixed`` is true
    when the trainings ran in more than one environment (or some recorded none)."""
    groups = group_environments(trainings)
    return {
        "format": RUN_FORMAT,
        **git_state(repository),
        "workflow": environment(None, repository),
        "trainings": groups,
        "mixed": len(groups) > 1,
    }


PROVENANCE_COLUMNS = ["commit", "dirty", "snakemake", "torch", "torchvision", "numpy", "multirater",
                      "cpu", "cpu_capability", "threads", "device", "gpu", "kernels", "mixed"]


def provenance_columns(record: dict[str, Any]) -> dict[str, Any]:
    """One table row of :data:`PROVENANCE_COLUMNS` from a ``run.json`` (:func:`run_record`): the commit
    and snakemake of the run, the rest from its trainings; a fact on which the trainings differ lists
    each value, ``;``-separated, and ``mixed`` is true."""
    envs = [g["environment"] for g in record["trainings"] if g["environment"] is not None]

    def training(get: Any) -> Any:
        values = []
        for env in envs:
            value = get(env)
            if value not in values:
                values.append(value)
        if not values:
            return None
        return values[0] if len(values) == 1 else "; ".join(str(v) for v in values)

    return {
        "commit": record["commit"], "dirty": record["dirty"],
        "snakemake": record["workflow"]["versions"]["snakemake"],
        **{name: training(lambda e, n=name: e["versions"][n]) for name in ("torch", "torchvision", "numpy",
                                                                            "multirater")},
        **{name: training(lambda e, n=name: e[n]) for name in ("cpu", "cpu_capability", "threads", "device",
                                                               "gpu")},
        "kernels": training(lambda e: " ".join(f"{k}={v}" for k, v in sorted(e["kernels"].items())) or "native"),
        "mixed": record["mixed"],
    }
