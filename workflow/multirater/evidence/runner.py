"""One cell of the evidence: the whole workflow (this repository's Snakefile, the local profile) on the
cell's config, in the cell's folder, then ``run.json`` with its wall-clock time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from multirater.core.errors import UserError
from multirater.core.files import read_yaml, write_json
from multirater.evidence.design import RUN_RECORD

# The checkout this package lies in (workflow/multirater/evidence/runner.py -> the repository root).
REPOSITORY = Path(__file__).resolve().parents[3]


def default_snakefile() -> Path:
    """The repository's Snakefile (the package is installed editable from its checkout)."""
    return REPOSITORY / "Snakefile"


def default_profile() -> Path:
    """The repository's local profile (``profiles/local``)."""
    return REPOSITORY / "profiles" / "local"


def run_cell(config_path: str | Path, cores: int, snakefile: str | Path | None = None,
             profile: str | Path | None = None) -> float:
    """Run the workflow on ``config_path`` in its folder with ``cores`` cores; write ``run.json`` (preset,
    bias, seed, cores, seconds) beside it; return the seconds. Where it ran is the workflow's own record
    (``results/run.json``, ``multirater.core.provenance``). Finished jobs of an earlier run
    are kept (Snakemake's own bookkeeping in the folder), so an interrupted cell resumes, even after a kill
    that left the folder locked."""
    config_path = Path(config_path).resolve()
    snakefile = Path(snakefile or default_snakefile()).resolve()
    profile = Path(profile or default_profile()).resolve()
    if not snakefile.is_file():
        raise UserError("no Snakefile here: the evidence runs the workflow of a repository checkout", snakefile)
    config = read_yaml(config_path)
    synthetic = config["dataset"]["synthetic"]
    folder = config_path.parent
    # the rules call `multirater`: the one beside this Python comes first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", *cell_targets(config), "--snakefile", str(snakefile),
               "--directory", str(folder), "--configfile", str(config_path), "--profile", str(profile),
               "--cores", str(cores)]
    print(" ".join(command), flush=True)
    start = time.monotonic()
    # A cell runs only inside the evidence rule, one at a time under the outer run's own lock, so a lock
    # left in the cell's folder is stale (the outer run was killed): lift it, or the rerun could not resume.
    subprocess.run([*command, "--unlock"], env=env, cwd=folder, capture_output=True)
    result = subprocess.run(command, env=env, cwd=folder)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise UserError(f"the workflow of this cell failed (exit status {result.returncode}); see the output above "
                        f"and the job logs in {folder / 'results' / 'logs'}", config_path)
    write_json(folder / RUN_RECORD, {"preset": synthetic["preset"], "bias": synthetic.get("bias"),
                                     "seed": synthetic["seed"], "cores": cores, "seconds": round(seconds, 1)})
    return seconds


def cell_targets(config: dict) -> list[str]:
    """What a cell's workflow is asked for: everything (``all``) and, by name, every file the summary reads.
    Named, an intermediate file that went missing (an interrupted run's outputs are removed before the rerun)
    is made again even where the files after it are up to date."""
    from multirater.evidence.design import cell_files

    sizes = (config.get("ensembles") or {}).get("sizes")
    if not sizes:  # not a cell config written by the evidence run: the workflow's default target only
        return ["all"]
    files = cell_files(".", sizes, bool((config.get("calibration") or {}).get("enabled")))
    return ["all", *(str(Path(path)) for name, path in files.items() if name != "run")]

