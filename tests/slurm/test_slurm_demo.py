"""The demo through the repository's slurm profile on the one-node test cluster, with only the overrides the
documentation (docs/slurm.md) gives for a cluster without GPUs (its code block, the partition set to the test cluster's). It runs
to its figures, and sacct shows: one SLURM job per model (its training, predictions and evaluation), asking
for its largest member's CPUs and memory and the sum of their time limits (not the sum of CPUs and memory);
the small jobs after the members checkpoint as jobs of their own, one CPU each, none submitted twice; and
no job asking for more than the node has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from multirater.config import SCHEMA_PATH
from multirater.workflow_config import load_workflow_config
from multirater.slurm.nodes import minutes

from .slurm_helpers import (MODEL_RULES, PARTITION, cluster_node, group_listings, mem_mb, model_of, rule_of, rules_of,
                            run_id, snakemake)
from .test_slurm_workflow import REPO, wait_accounted

SLURM_PAGE = "docs/slurm.md"
CPU_ONLY_SECTION = "## A cluster without GPUs"
FIGURES = ["fig1_rater_agreement", "fig2_interrater", "fig3_reliability", "fig4_ensemble_size"]
SMALL_RULES = {"fuse", "evaluate_detections"}  # after the members checkpoint: jobs of their own


def documented_overrides() -> list[str]:
    """The options of the documented command for a cluster without GPUs (after profile and config file)."""
    section = (REPO / SLURM_PAGE).read_text().split(CPU_ONLY_SECTION, 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:5] == ["snakemake", "--profile", "profiles/slurm", "--configfile", "config/config.yaml"], words
    return words[5:]


def option_values(words: list[str], option: str) -> list[str]:
    """The values following one option, up to the next option."""
    start = words.index(option) + 1
    end = next((i for i in range(start, len(words)) if words[i].startswith("--")), len(words))
    return words[start:end]


def one_after_another(members: list[dict[str, int | str]]) -> tuple[int, int, int]:
    """What a group whose members run one after another needs: the most CPUs, the most memory and
    the sum of the time limits."""
    return (max(int(m["threads"]) for m in members), max(int(m["mem_mb"]) for m in members),
            sum(int(m["runtime"]) for m in members))


def test_demo_through_the_slurm_profile_with_the_documented_overrides(tmp_path: Path, slurm_cluster: None) -> None:
    overrides = documented_overrides()
    assert sum(w.startswith("slurm_partition=") for w in overrides) == 1, overrides
    site = [f"slurm_partition={PARTITION}" if w.startswith("slurm_partition=") else w for w in overrides]
    work = tmp_path / "work"
    done = snakemake(tmp_path, "-s", str(REPO / "Snakefile"), "-d", str(work), "--profile",
                     str(REPO / "profiles" / "slurm"), "--configfile", str(REPO / "config" / "config.yaml"),
                     *site, timeout=2700)
    log = done.stdout + done.stderr
    (tmp_path / "snakemake.log").write_text(log)
    assert done.returncode == 0, log[-4000:]
    for stem in FIGURES:
        assert (work / "results" / "figures" / f"{stem}.png").exists(), stem

    records = wait_accounted(run_id(log))
    (tmp_path / "sacct.txt").write_text("\n".join("|".join(r.values()) for r in records) + "\n")
    assert records and all(r["State"] == "COMPLETED" for r in records), records

    # No job asked for more than the node has.
    _name, cpus, mem = cluster_node()
    for record in records:
        assert int(record["ReqCPUS"]) <= cpus and mem_mb(record["ReqMem"]) <= mem, record

    # One SLURM job per model, holding its training, predictions and evaluation; nothing of a model
    # ran in a job of its own.
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    _checked, raters, configurations = load_workflow_config(config, SCHEMA_PATH)
    strategies = ["ls", *(f"rs-{r}" for r in raters)]
    models = [model_of(r["Comment"]) for r in records]
    for strategy in strategies:
        for configuration in configurations:
            jobs = [m[2] for m in models if m and m[:2] == (strategy, configuration["config_id"])]
            assert jobs == [set(MODEL_RULES)], (strategy, configuration["config_id"], records)
    assert len([m for m in models if m]) == len(strategies) * len(configurations), records
    # (an evaluation of its own would carry the subject models/<strategy>/<config_id> in its comment)
    loose = [r for r in records if not model_of(r["Comment"]) and (rules_of(r) & {"train", "predict"} or re.search(
        r"^rule_evaluate_detections_wildcards_(label_sets_.+_)?models_", r["Comment"]))]
    assert not loose, loose

    # Every group job asked for what its members need one after another (the most CPUs, the most memory,
    # the sum of the time limits), not for their sum, with the documented threads and memory.
    listings = group_listings(log)
    by_comment: dict[str, list[tuple[int, int, int]]] = {}
    for group, members in listings:
        comment = f"rule_{group}_{'_'.join(sorted({str(m['rule']) for m in members}))}"
        by_comment.setdefault(comment, []).append(one_after_another(members))
    grouped = [r for r in records if r["Comment"] in by_comment]
    assert len(grouped) == len(listings), (listings, records)
    for record in grouped:
        asked = (int(record["ReqCPUS"]), mem_mb(record["ReqMem"]), minutes(record["Timelimit"]))
        assert asked in by_comment[record["Comment"]], (record, by_comment[record["Comment"]])
    threads = dict(w.split("=") for w in option_values(overrides, "--set-threads"))
    memory = {k.split(":")[0]: v for k, v in (w.split("=") for w in option_values(overrides, "--set-resources"))
              if k.endswith(":mem_mb")}
    for record in records:  # the documented numbers reached the model jobs
        if model_of(record["Comment"]):
            assert int(record["ReqCPUS"]) == max(int(threads["train"]), int(threads["predict"])), record
            assert mem_mb(record["ReqMem"]) >= max(int(memory["train"]), int(memory["predict"])), record
    # The small jobs after the members checkpoint (fusions, their evaluations, the calibrated ones) ran as
    # jobs of their own, one CPU each, and nothing was submitted twice.
    small = [r for r in records if rule_of(r) in SMALL_RULES]
    assert small and all(r["ReqCPUS"] == "1" for r in small), small
    comments = [r["Comment"] for r in records]
    assert sorted(set(comments)) == sorted(comments), "a job was submitted twice"
