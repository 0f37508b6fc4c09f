"""The design of an evidence run: its runs (cells), each one's workflow config, and the files a run leaves
that the summary reads. Light (no pandas): the Snakefile reads it at parse time.

A cell is one run of the whole workflow on synthetic data with one rater preset, bias (the ``graded``
preset's) and data seed (``dataset.synthetic.preset``, ``bias`` and ``seed``). Two designs:

- ``evidence.presets`` x ``evidence.seeds`` (``make evidence``): cells ``<preset>-<seed>``, every other setting
  the config's own;
- ``evidence.arms`` (``make mechanism``): each arm a preset, its biases and seeds, and settings of its own on
  top of the config (``config``, e.g. unfrozen training); cells ``<arm>-b<bias>-s<seed>``, and the cell's
  config records its arm (``evidence.arm``).

A cell's folder holds its config (``config.yaml``, the one record of what the cell is), the workflow's
``results/`` and ``run.json`` (where and how long the run took).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.strategies import ENSEMBLE_KINDS
from multirater.data.synthetic.graded import GRADED  # the arms' default preset (as the schema says)
from multirater.ensembles.files import TEST, fused_file

CELL_CONFIG = "config.yaml"
RUN_RECORD = "run.json"
RESULTS = "results"  # the workflow's own results folder inside a cell's folder (R in common.smk)
CELL_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"  # a cell's folder name (the snakemake wildcard)


@dataclass(frozen=True)
class Cell:
    """One run of the evidence: a rater preset (and its bias), a synthetic data seed, and the arm it is of."""

    preset: str
    seed: int
    bias: float | None = None
    arm: str | None = None

    @property
    def name(self) -> str:
        """The cell's folder name: ``<preset>-<seed>``, or in an arm ``<arm>-b<bias>-s<seed>`` (a preset
        without bias: ``<arm>-<preset>-s<seed>``)."""
        if self.arm is None:
            return f"{self.preset}-{self.seed}"
        middle = self.preset if self.bias is None else f"b{self.bias:g}"
        return f"{self.arm}-{middle}-s{self.seed}"


def _arms(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["evidence"].get("arms") or {}


def evidence_cells(config: dict[str, Any], file: str = "config") -> list[Cell]:
    """The cells of a checked workflow config's ``evidence`` section: with ``arms``, every arm's biases with
    its seeds, arm by arm; else every preset with every seed, presets first. The evidence needs synthetic
    data (it sets the generator's preset, bias and seed)."""
    if config["dataset"]["manifest"] is not None:
        raise UserError("must be null for the evidence run: it generates synthetic data for every rater preset "
                        "and seed of the evidence section", file, "dataset.manifest")
    evidence = config["evidence"]
    arms = _arms(config)
    if not arms:
        return [Cell(preset, int(seed)) for preset in evidence["presets"] for seed in evidence["seeds"]]
    cells = []
    for arm, spec in arms.items():
        biases = spec.get("biases") or [None]
        cells += [Cell(spec.get("preset", GRADED), int(seed), None if bias is None else float(bias), arm)
                  for bias in biases for seed in spec["seeds"]]
    return cells


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, mappings key by key (a copy; lists and values replace)."""
    out = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def cell_config(config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """The workflow config of one cell: ``config`` without its evidence section, with the cell's rater preset,
    bias and data seed; in an arm, the arm's own settings on top and ``evidence: {arm: <arm>}``."""
    out = copy.deepcopy({k: v for k, v in config.items() if k != "evidence"})
    if cell.arm is not None:
        out = merge(out, _arms(config)[cell.arm].get("config") or {})
        out["evidence"] = {"arm": cell.arm}
    out["dataset"]["synthetic"].update(preset=cell.preset, seed=cell.seed)
    if cell.bias is not None:
        out["dataset"]["synthetic"]["bias"] = cell.bias
    return out


def cell_files(folder: str | Path, sizes: list[int], calibration: bool = False) -> dict[str, str]:
    """The files of a finished cell that the summary reads, by name (``sizes``: the ensemble sizes;
    ``calibration``: the cells calibrate, so each has ``tables/calibration.csv``)."""
    results = Path(folder) / RESULTS
    extra = {"calibration": str(results / "tables" / "calibration.csv")} if calibration else {}
    return {**extra,
        "metrics": str(results / "tables" / "metrics.csv"),
        "lse_vs_rse": str(results / "tables" / "lse_vs_rse.csv"),
        "learned_bias": str(results / "tables" / "learned_bias.csv"),
        "agreement": str(results / "agreement" / "f1_vs_iou.csv"),
        **{f"{kind}_fused": fused_file(results, TEST, kind, max(sizes)) for kind in ENSEMBLE_KINDS},
        "run": str(Path(folder) / RUN_RECORD),
        "provenance": str(results / "run.json"),  # where the cell's workflow ran (core.provenance)
    }


def cell_folder(config: dict[str, Any], cell: Cell) -> str:
    """A cell's folder: ``<evidence.out>/<cell name>``."""
    return f"{config['evidence']['out']}/{cell.name}"


def summary_figures(config: dict[str, Any]) -> dict[str, str]:
    """The summary's figures besides fig_evidence, by output name: ``fig_learned_bias`` and, per arm,
    ``fig_<arm>``, each ``{png,pdf}`` in ``evidence.out``."""
    stems = ["fig_learned_bias", *(f"fig_{arm}" for arm in _arms(config))]
    return {f"{stem}_{ext}": f"{config['evidence']['out']}/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")}


def summary_inputs(config: dict[str, Any], sizes: list[int], file: str = "config") -> list[str]:
    """Every file of every cell that the summary reads (an error when the config cannot have an evidence run)."""
    cells = evidence_cells(config, file)
    calibration = bool(config["calibration"]["enabled"])
    return [path for cell in cells
            for path in cell_files(cell_folder(config, cell), sizes, calibration).values()]
