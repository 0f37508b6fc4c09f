"""How profiles/slurm groups the demo's jobs, from a dry run (no cluster needed: runs under plain `make
test`): one group per model holding its training, its predictions (one job for every split) and its
evaluation, and nothing of a model outside its group."""

from __future__ import annotations

from pathlib import Path

import yaml

from multirater.config import SCHEMA_PATH
from multirater.workflow_config import load_workflow_config

from .slurm_helpers import group_listings, snakemake
from .test_slurm_workflow import REPO

NEEDS_CLUSTER = False


def test_one_group_per_model_with_training_predictions_and_evaluation(tmp_path: Path) -> None:
    done = snakemake(tmp_path, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                     "--configfile", str(REPO / "config" / "config.yaml"),
                     "--profile", str(REPO / "profiles" / "slurm"), timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]

    listings = {group: sorted(str(m["rule"]) for m in members) for group, members in group_listings(log)}

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    _checked, raters, configurations = load_workflow_config(config, SCHEMA_PATH)
    # one prediction job per model, whatever the number of splits it predicts
    expected = sorted(["train", "evaluate_detections", "predict"])
    models = {f"model_{s}_{c['config_id']}" for s in ["ls", *(f"rs-{r}" for r in raters)] for c in configurations}
    assert {g for g in listings if g.startswith("model_")} == models, sorted(listings)
    for group in models:
        assert listings[group] == expected, (group, listings[group])
