"""The package's layers, lowest first: a module imports modules of its own layer or of a lower one, never of a
later one, and no import cycle (tests/test_imports.py checks every import, function-level ones included).

- Foundations, shared by the stages: ``core`` and ``io`` (one layer: the engines of ``core`` read and write
  ``io``'s formats, and ``io`` reports with ``core``'s errors) hold what two stages share: errors, files,
  boxes, matching, the fusion and average-precision engines, the plot style, one reader/writer per file
  format. Then ``config`` (the schema: defaults, checks, one-line errors) and ``slurm`` (the cluster
  pre-flight, which needs nothing but ``core``).
- The stages, in the order the workflow runs them (``STAGES``; one ``workflow/rules/<stage>.smk`` and one
  ``multirater.<stage>.commands`` each, registered by the CLI in this order).
- The entry points above them all: the modules at the package's root (``cli``, ``__main__``, the workflow's
  config loader ``workflow_config``, this one). The package's ``__init__`` (its version) is below everything.
"""

from __future__ import annotations

STAGES = ("data", "agreement", "training", "selection", "ensembles", "evaluation", "calibration", "figures",
          "apply", "review", "report", "evidence")
LAYERS: tuple[tuple[str, ...], ...] = (("core", "io"), ("config",), ("slurm",), *((stage,) for stage in STAGES))
PACKAGES = tuple(package for layer in LAYERS for package in layer)


def layer_of(package: str) -> int:
    """The position of a subpackage's layer in ``LAYERS`` (lowest 0)."""
    return next(k for k, layer in enumerate(LAYERS) if package in layer)
