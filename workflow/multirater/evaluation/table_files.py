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
from multirater.evaluation.two_level import member_files_by_size
from multirater.selection.ranking import read_selection


def _replicates(pool_path: str | Path | None, replicate_files: list[str | Path],
                selected: dict[tuple[str, str], dict]) -> dict[tuple[str, str], list[dict]]:
    """Each selected model's replicates' metrics files (replicate 0 first), from the pool file."""
    from multirater.selection.pool import read_pool

    if pool_path is None:
        if replicate_files:
            raise UserError("replicates' metrics files need the pool file that names them (--pool)")
        return {}
    pool = read_pool(pool_path)
    files = by_identity(replicate_files, model_key)
    listed = {(m["strategy"], m["config_id"]): m for m in pool["models"]}
    out = {}
    for key, data in selected.items():
        if key not in listed:
            raise UserError(f"does not list the selected model {'/'.join(key)} (a pool of another selection?)",
                            pool_path)
        reps = [r["model_id"] for r in listed[key]["replicates"][1:]]
        missing = [rid for rid in reps if (key[0], rid) not in files]
        if missing:
            raise UserError(f"no metrics file for replicate(s) {missing} of {'/'.join(key)}", pool_path)
        out[key] = [data, *(files[(key[0], rid)] for rid in reps)]
    return out


def write_tables(selection_path: str | Path, model_files: list[str | Path], ensemble_files: list[str | Path],
                 out_dir: str | Path, label_set_files: list[str | Path] | None = None,
                 member_files: list[str | Path] | None = None, pool_path: str | Path | None = None,
                 replicate_files: list[str | Path] | None = None) -> list[Path]:
    """Every table into ``out_dir``: metrics.csv, table1.{csv,md,tex}, significance.csv, lse_vs_rse.csv (from
    the headline label set's ``model_files`` and ``ensemble_files``) and label_sets.csv (those, and
    ``label_set_files``: the models and ensembles on the other test label sets). ``member_files`` (member
    bootstrap files, one per size) give lse_vs_rse.csv its two-level intervals; ``pool_path`` and
    ``replicate_files`` (the selected models' replicates' metrics files) give significance.csv its own."""
    rows = read_selection(selection_path)
    models = by_identity(model_files, model_key)
    ensembles = by_identity(ensemble_files, ensemble_key)
    chosen = {(r["strategy"], r["config_id"]) for r in rows if r["selected"]}
    missing = sorted(chosen - set(models))
    if missing:
        raise UserError(f"no metrics file for selected model(s) {['/'.join(m) for m in missing]}", selection_path)
    selected = {k: v for k, v in models.items() if k in chosen}
    replicates = _replicates(pool_path, list(replicate_files or []), selected)
    members = member_files_by_size(list(member_files or []))
    out = Path(out_dir)
    t1 = table1(selected)
    outputs = {
        "metrics.csv": metrics_table(models, ensembles),
        "table1.csv": t1,
        "significance.csv": significance(selected, replicates=replicates),
        "lse_vs_rse.csv": lse_vs_rse(ensembles, members),
        "label_sets.csv": label_set_table([*model_files, *ensemble_files], label_set_files or []),
    }
    written = []
    for name, frame in outputs.items():
        write_csv(out / name, frame)
        written.append(out / name)
    write_text(out / "table1.md", table1_markdown(t1))
    write_text(out / "table1.tex", table1_latex(t1))
    return written + [out / "table1.md", out / "table1.tex"]
