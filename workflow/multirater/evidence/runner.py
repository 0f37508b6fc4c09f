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
    """Run the workflow on ``config_path`` in its folder with ``cores`` cores; write ``run.json``
    (preset, seed, cores, seconds) beside it; return the seconds. Finished jobs of an earlier run are
    kept (Snakemake's own bookkeeping in the folder), so an interrupted cell resumes."""
    config_path = Path(config_path).resolve()
    snakefile = Path(snakefile or default_snakefile()).resolve()
    profile = Path(profile or default_profile()).resolve()
    if not snakefile.is_file():
        raise UserError("no Snakefile here: the evidence runs the workflow of a repository checkout", snakefile)
    synthetic = read_yaml(config_path)["dataset"]["synthetic"]
    folder = config_path.parent
    # the rules call `multirater`: the one beside this Python comes first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(folder),
               "--configfile", str(config_path), "--profile", str(profile), "--cores", str(cores)]
    print(" ".join(command), flush=True)
    start = time.monotonic()
    result = subprocess.run(command, env=env, cwd=folder)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise UserError(f"the workflow of this cell failed (exit status {result.returncode}); see the output above "
                        f"and the job logs in {folder / 'results' / 'logs'}", config_path)
    write_json(folder / RUN_RECORD, {"preset": synthetic["preset"], "seed": synthetic["seed"], "cores": cores,
                                     "seconds": round(seconds, 1)})
    return seconds
