"""SLURM tests (a package, so its conftest and helpers never shadow tests/conftest.py)."""
