#!/usr/bin/env bash
# Runs once after snakemake creates the conda env (inside it): install the multirater package from
# this repository. Snakemake runs it from the working directory (the repository root when you run
# the workflow from there); set MULTIRATER_SOURCE to the repository path otherwise.
set -euo pipefail
python -m pip install --no-deps "${MULTIRATER_SOURCE:-.}"
