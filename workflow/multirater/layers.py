"""The package's layers, lowest first: a module imports modules of its own layer or of a lower one, never of a
later one (tests/test_imports.py checks every import, function-level ones included, and that there is no cycle).

- Foundations, shared by the stages: ``core`` (errors, files, boxes, matching, the fusion and average-precision
  engines, plot style, the registries of names several stages use), ``io`` (one reader/writer per file
  format), ``config`` (the schema: defaults, checks, one-line errors) and ``slurm`` (the cluster pre-flight,
  which needs nothing but ``core``).
- The stages, in the order the workflow runs them (``STAGES``; one ``workflow/rules/<stage>.smk`` and one
  ``multirater.<stage>.commands`` each): what two stages share lives in ``core``.
- The entry points above them all: the modules at the package's root (``cli``, ``__main__``, the workflow's
  config loader ``workflow_config``). The package's ``__init__`` (its version) is below everything.
"""

from __future__ import annotations

FOUNDATIONS = ("core", "io", "config", "slurm")
STAGES = ("data", "agreement", "training", "selection", "ensembles", "evaluation", "calibration", "figures",
          "apply", "evidence")
LAYERS = (*FOUNDATIONS, *STAGES)
