"""The workflow configuration: validated against the schema (``multirater.config.schema``), then the
cross-key rules JSON Schema cannot express (torch-free; the Snakefile calls this at parse time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multirater.config.schema import validate
from multirater.core.errors import UserError
from multirater.core.strategies import ensemble_kind


def rater_names(config: dict[str, Any], file: str = "config") -> list[str]:
    """The raters of the configured dataset: synthetic rater1..raterN, or a manifest's ``raters`` keys."""
    from multirater.data.manifest import read_manifest

    manifest = config["dataset"].get("manifest")
    if manifest is None:
        return [f"rater{i + 1}" for i in range(config["dataset"]["synthetic"]["raters"])]
    return list(read_manifest(manifest).rater_files)


def label_set_names(config: dict[str, Any]) -> list[str]:
    """The test label sets of the configured dataset: the synthetic ``consensus`` (and each rater's own,
    ``<rater>_test``, with ``dataset.synthetic.rater_test_labels``), or a manifest's
    (``consensus`` first, then ``test_label_sets``), then ``majority`` when the workflow derives it (no
    consensus: ``multirater.data.consensus.majority_voters``)."""
    from multirater.data.consensus import MAJORITY, majority_voters
    from multirater.data.manifest import CONSENSUS, read_manifest

    manifest = config["dataset"].get("manifest")
    if manifest is None:
        from multirater.data.synthetic.presets import rater_test_label_set

        synthetic = config["dataset"].get("synthetic") or {}
        own = [rater_test_label_set(r) for r in rater_names(config)] if synthetic.get("rater_test_labels") else []
        return [CONSENSUS, *own]
    names = list(read_manifest(manifest).label_set_files)
    return names + [MAJORITY] if majority_voters(names) else names


def soft_label_sets(config: dict[str, Any], file: str = "config") -> list[str]:
    """The label sets of D-ECE-soft: ``evaluation.soft_label_sets``, checked against the dataset's label sets,
    or by default each synthetic rater's own test labels when they are written."""
    from multirater.data.synthetic.presets import rater_test_label_set

    chosen = config["evaluation"].get("soft_label_sets")
    label_sets = label_set_names(config)
    if chosen is None:
        own = [rater_test_label_set(r) for r in rater_names(config)]
        return [s for s in own if s in label_sets] if config["dataset"].get("manifest") is None else []
    where = config["dataset"].get("manifest") or "the synthetic dataset"
    for i, name in enumerate(chosen):
        if name not in label_sets:
            raise UserError(f"{name!r} is not a test label set of {where} ({', '.join(label_sets)})", file,
                            f"evaluation.soft_label_sets[{i}]")
    return list(chosen)


def headline_label_set(config: dict[str, Any], file: str = "config") -> str:
    """The test label set of the headline metrics, tables and figures: ``evaluation.label_set``, checked
    against the dataset's label sets, or by default ``consensus`` when there is one, else the majority (the
    import's, or the workflow's of every label set), else the one label set."""
    from multirater.data.consensus import MAJORITY
    from multirater.data.manifest import CONSENSUS

    label_sets = label_set_names(config)
    where = config["dataset"].get("manifest") or "the synthetic dataset"
    if not label_sets:
        raise UserError("has no test label set (consensus or test_label_sets): the test images need labels; "
                        "multirater import takes them with --consensus-labels (a consensus) or --test-labels "
                        "(each rater's own, whose majority the workflow then evaluates against)",
                        where, "test_label_sets")
    chosen = config["evaluation"].get("label_set")
    if chosen is None:
        for default in (CONSENSUS, MAJORITY):
            if default in label_sets:
                return default
        return label_sets[0]
    if chosen not in label_sets:
        raise UserError(f"{chosen!r} is not a test label set of {where} ({', '.join(label_sets)})", file,
                        "evaluation.label_set")
    return chosen


def check_dataset(config: dict[str, Any], raters: list[str], file: str = "config") -> None:
    """The dataset's cross-key rules: the synthetic raters' styles and second passes, and where the base
    model comes from (never from the experiment's own labels)."""
    from multirater.data.synthetic.presets import check_overrides

    dataset = config["dataset"]
    synthetic = dataset["synthetic"]
    if dataset["manifest"] is None:
        try:
            check_overrides(synthetic["rater_styles"], len(raters))
        except UserError as error:
            raise UserError(error.problem, file, f"dataset.synthetic.{error.item}") from None
        from multirater.data.synthetic.presets import preset_pair

        try:
            preset_pair(synthetic["preset"], synthetic["bias"])
        except UserError as error:
            raise UserError(error.problem, file, f"dataset.synthetic.{error.item}") from None
        if synthetic["rater_coverage"] == "partial" and synthetic["images"] < 2 * len(raters):
            raise UserError(f"partial coverage gives each rater every {len(raters)}th image and each needs 2 (train "
                            f"and validation): at least {2 * len(raters)} images", file, "dataset.synthetic.images")
        if synthetic["repeat_images"] > synthetic["images"]:
            raise UserError(f"{synthetic['repeat_images']} is more than the {synthetic['images']} multi-rater "
                            "images (dataset.synthetic.images)", file, "dataset.synthetic.repeat_images")
    base_checkpoint = (config.get("model") or {}).get("base_checkpoint")
    base_manifest = dataset["base_manifest"]
    if base_checkpoint is not None and base_manifest is not None:
        raise UserError("the base model comes from model.base_checkpoint or is trained on this dataset: give "
                        "one of the two", file, "dataset.base_manifest")
    if base_manifest is not None and dataset["manifest"] is not None and \
            Path(base_manifest).resolve() == Path(dataset["manifest"]).resolve():
        raise UserError("is the experiment's own dataset; the base model must be trained on other images and "
                        "labels", file, "dataset.base_manifest")
    if base_checkpoint is None and base_manifest is None and dataset["manifest"] is not None:
        raise UserError("is null with your own dataset (dataset.manifest), and the base model must never learn the "
                        "experiment's labels: set model.base_checkpoint to a weights file (e.g. GOAT's), or "
                        "dataset.base_manifest to a separate dataset.yaml for the pretrain job", file,
                        "model.base_checkpoint")


def check_design(config: dict[str, Any], raters: list[str], n_configs: int, file: str = "config") -> None:
    """The experiment's cross-key rules: every ensemble can be built from the selected models."""
    n_raters = len(raters)
    ls, rs = config["selection"]["ls"], config["selection"]["rs"]
    if config["evaluation"]["member_draws"] == 1:
        raise UserError("must be 0 (off) or at least 2: one member draw has no spread", file,
                        "evaluation.member_draws")
    if (config.get("pretrain") or {}).get("replicates") is not None:
        raise UserError("replicates are of the selected models only: set training.replicates", file,
                        "pretrain.replicates")
    if ls > n_configs:
        raise UserError(f"selects {ls} label-sampling models but the sweep has only {n_configs} configurations",
                        file, "selection.ls")
    if rs > n_configs:
        raise UserError(f"selects {rs} models per rater but the sweep has only {n_configs} configurations",
                        file, "selection.rs")
    for i, size in enumerate(config["ensembles"]["sizes"]):
        item = f"ensembles.sizes[{i}]"
        if size % n_raters:
            raise UserError(f"{size} is not divisible by the number of raters ({n_raters}: {', '.join(raters)})",
                            file, item)
        if size > ls:
            raise UserError(f"{size} is larger than the {ls} label-sampling models selected (selection.ls)",
                            file, item)
        if size // n_raters > rs:
            raise UserError(f"{size} needs {size // n_raters} models per rater but only {rs} are selected "
                            "(selection.rs)", file, item)


def apply_ensemble(config: dict[str, Any], raters: list[str], file: str = "config") -> tuple[str, int]:
    """(kind, size) of the ensemble the ``apply`` section asks for, checked against the selection;
    the size defaults to the largest of ``ensembles.sizes``. Checked only when the apply target is built."""
    apply = config["apply"]
    if apply["images"] is None:
        raise UserError("not set; name the folder of new images in a config file "
                        "(apply: {images: DIR, kind: rse, size: 4})", file, "apply.images")
    if not Path(apply["images"]).is_dir():
        raise UserError(f"{apply['images']}: no such folder", file, "apply.images")
    kind = apply["kind"]
    spec = ensemble_kind(kind, file, "apply.kind")
    size = max(config["ensembles"]["sizes"]) if apply["size"] is None else apply["size"]
    if spec.per_rater and size % len(raters):
        raise UserError(f"{size} is not divisible by the number of raters ({len(raters)}: {', '.join(raters)})",
                        file, "apply.size")
    key = spec.members  # the selection key of the members' strategies
    selected = config["selection"][key]
    per_source = spec.members_per_source(size, len(raters))
    if per_source > selected:
        raise UserError(f"{spec.label}_{size} needs {per_source} selected models per source but only {selected} "
                        f"are selected (selection.{key})", file, "apply.size")
    return kind, size


def check_workflow_config(config: dict[str, Any], file: str = "config") -> tuple[list[str], list[dict[str, Any]]]:
    """The cross-key rules of a schema-valid config, in one place: the rater names (from the dataset),
    the dataset's rules (``check_dataset``), the sweep's configurations, and that every ensemble can be
    built from the selected models."""
    from multirater.training.replicates import replicate_ids, replicates
    from multirater.training.sweep import expand_sweep

    raters = rater_names(config, file)
    check_dataset(config, raters, file)
    configs = expand_sweep(config, file)
    check_design(config, raters, len(configs), file)
    replicate_ids([c["config_id"] for c in configs], replicates(config), file)
    return raters, configs


# The settings that name a file or folder the workflow reads, with what it is (for the message).
SETTING_FILES = {
    "dataset.manifest": ("file", "your dataset.yaml: multirater import writes one, docs/file-contracts.md "
                                 "describes it"),
    "dataset.base_manifest": ("file", "the separate dataset.yaml the pretrain job trains the base model on"),
    "model.base_checkpoint": ("file", "the weights every model is fine-tuned from, e.g. the GOAT weights "
                                      "(Bremer et al. 2022; config/multiorg.yaml, step 3): put the file there or "
                                      "change the path"),
    "apply.images": ("folder", "the new images the apply target counts objects in"),
}


def check_setting_files(config: dict[str, Any], file: str = "config") -> None:
    """Every file or folder a setting names exists (relative paths: from the working directory), else one
    UserError naming the setting, instead of Snakemake's MissingInputException about a path."""
    for key, (kind, what) in SETTING_FILES.items():
        section, name = key.split(".")
        path = (config.get(section) or {}).get(name)
        if path is None:
            continue
        found = Path(path).is_dir() if kind == "folder" else Path(path).is_file()
        if not found:
            problem = "is a folder, not a file" if kind == "file" and Path(path).is_dir() else "not found"
            raise UserError(f"{kind} {path} {problem} ({what})", file, key)


def load_workflow_config(config: dict[str, Any], schema_path: str | Path, file: str = "config",
                         check_files: bool = False) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """What the Snakefile needs at parse time: the validated config (defaults filled, and
    ``evaluation.label_set`` resolved to a label set of the dataset), the rater names and the sweep's
    configurations; any problem is one UserError naming the key. ``check_files``: also that every file a
    setting names exists (``check_setting_files``; the Snakefile asks for it, the cross-key rules not)."""
    checked = validate(config, schema_path, file)
    if check_files:
        check_setting_files(checked, file)
    raters, configs = check_workflow_config(checked, file)
    checked["evaluation"]["label_set"] = headline_label_set(checked, file)
    checked["evaluation"]["soft_label_sets"] = soft_label_sets(checked, file)
    return checked, raters, configs


def check_evidence_cells(config: dict[str, Any], schema_path: str | Path, file: str = "config") -> None:
    """Every evidence arm's cell config (``multirater.evidence.design.cell_config``) is a valid workflow config,
    with the run's ensemble sizes and calibration (the summary reads the same files of every cell); a problem
    names the arm and the key."""
    from multirater.evidence.design import cell_config, evidence_cells

    for cell in evidence_cells(config, file):
        if cell.arm is None:
            continue
        where = f"{file} (evidence.arms.{cell.arm}.config)"
        checked = load_workflow_config(cell_config(config, cell), schema_path, where)[0]
        for section, key in (("ensembles", "sizes"), ("calibration", "enabled")):
            if checked[section][key] != config[section][key]:
                raise UserError("is the same in every cell of the run: set it outside the arms", where,
                                f"{section}.{key}")
