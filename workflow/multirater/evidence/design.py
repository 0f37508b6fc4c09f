"""The evidence run's design: its runs (cells), each one's workflow config, and the files a run leaves
that the summary reads. Light (no pandas): the Snakefile reads it at parse time.

A cell is one run of the whole workflow on synthetic data with one rater preset and one data seed
(``dataset.synthetic.preset`` and ``seed``); every other setting is the evidence config's own. A cell's
folder holds its config (``config.yaml``, the one record of what the cell is), the workflow's
``results/`` and ``run.json`` (how long the run took).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.strategies import ENSEMBLE_KINDS
from multirater.ensembles.files import TEST, fused_file

CELL_CONFIG = "config.yaml"
RUN_RECORD = "run.json"
RESULTS = "results"  # the workflow's own results folder inside a cell's folder (R in common.smk)


@dataclass(frozen=True)
class Cell:
    """One run of the evidence: a rater preset and a synthetic data seed."""

    preset: str
    seed: int

    @property
    def name(self) -> str:
        """The cell's folder name: ``<preset>-<seed>``."""
        return f"{self.preset}-{self.seed}"


def evidence_cells(config: dict[str, Any], file: str = "config") -> list[Cell]:
    """The cells of a checked workflow config's ``evidence`` section: every preset with every seed,
    presets first. The evidence needs synthetic data (it sets the generator's preset and seed)."""
    if config["dataset"]["manifest"] is not None:
        raise UserError("must be null for the evidence run: it generates synthetic data for every rater preset "
                        "and seed of the evidence section", file, "dataset.manifest")
    evidence = config["evidence"]
    return [Cell(preset, int(seed)) for preset in evidence["presets"] for seed in evidence["seeds"]]


def cell_config(config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """The workflow config of one cell: ``config`` without its evidence section, with the cell's rater
    preset and data seed."""
    out = copy.deepcopy({k: v for k, v in config.items() if k != "evidence"})
    out["dataset"]["synthetic"].update(preset=cell.preset, seed=cell.seed)
    return out


def cell_files(folder: str | Path, sizes: list[int], calibration: bool = False) -> dict[str, str]:
    """The files of a finished cell that the summary reads, by name (``sizes``: the ensemble sizes;
    ``calibration``: the cells calibrate, so each has ``tables/calibration.csv``)."""
    results = Path(folder) / RESULTS
    extra = {"calibration": str(results / "tables" / "calibration.csv")} if calibration else {}
    return {**extra,
        "metrics": str(results / "tables" / "metrics.csv"),
        "lse_vs_rse": str(results / "tables" / "lse_vs_rse.csv"),
        "agreement": str(results / "agreement" / "f1_vs_iou.csv"),
        **{f"{kind}_fused": fused_file(results, TEST, kind, max(sizes)) for kind in ENSEMBLE_KINDS},
        "run": str(Path(folder) / RUN_RECORD),
        "provenance": str(results / "run.json"),  # where the cell's workflow ran (core.provenance)
    }


def cell_folder(config: dict[str, Any], cell: Cell) -> str:
    """A cell's folder: ``<evidence.out>/<preset>-<seed>``."""
    return f"{config['evidence']['out']}/{cell.name}"


def summary_inputs(config: dict[str, Any], sizes: list[int], file: str = "config") -> list[str]:
    """Every file of every cell that the summary reads (an error when the config cannot have an evidence run)."""
    cells = evidence_cells(config, file)
    calibration = bool(config["calibration"]["enabled"])
    return [path for cell in cells
            for path in cell_files(cell_folder(config, cell), sizes, calibration).values()]
