"""Every result table of the evaluation stage written into one folder (``multirater tables``): the tables of
``tables`` (from the headline label set's metrics files) and the label sets' table (``label_set_table``)."""

from __future__ import annotations

from pathlib import Path

from multirater.core.errors import UserError
from multirater.core.files import write_csv, write_text
from multirater.evaluation.label_set_table import label_set_table
from multirater.evaluation.tables import (
    by_identity, ensemble_key, lse_vs_rse, metrics_table, model_key, significance, table1, table1_latex, table1_markdown,
)
from multirater.selection.ranking import read_selection


def write_tables(selection_path: str | Path, model_files: list[str | Path], ensemble_files: list[str | Path],
                 out_dir: str | Path, label_set_files: list[str | Path] | None = None) -> list[Path]:
    """Every table into ``out_dir``: metrics.csv, table1.{csv,md,tex}, significance.csv, lse_vs_rse.csv (from
    the headline label set's ``model_files`` and ``ensemble_files``) and label_sets.csv (those, and
    ``label_set_files``: the models and ensembles on the other test label sets)."""
    rows = read_selection(selection_path)
    models = by_identity(model_files, model_key)
    ensembles = by_identity(ensemble_files, ensemble_key)
    chosen = {(r["strategy"], r["config_id"]) for r in rows if r["selected"]}
    missing = sorted(chosen - set(models))
    if missing:
        raise UserError(f"no metrics file for selected model(s) {['/'.join(m) for m in missing]}", selection_path)
    selected = {k: v for k, v in models.items() if k in chosen}
    out = Path(out_dir)
    t1 = table1(selected)
    outputs = {
        "metrics.csv": metrics_table(models, ensembles),
        "table1.csv": t1,
        "significance.csv": significance(selected),
        "lse_vs_rse.csv": lse_vs_rse(ensembles),
        "label_sets.csv": label_set_table([*model_files, *ensemble_files], label_set_files or []),
    }
    written = []
    for name, frame in outputs.items():
        write_csv(out / name, frame)
        written.append(out / name)
    write_text(out / "table1.md", table1_markdown(t1))
    write_text(out / "table1.tex", table1_latex(t1))
    return written + [out / "table1.md", out / "table1.tex"]
