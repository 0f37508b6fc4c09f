# The apply target's helpers: which ensemble to build, and its members once selection is known.

APPLY = config["apply"]


def apply_ensemble():
    """(kind, size) of the apply target; one error naming the config key when it cannot be built."""
    if APPLY["images"] is None:
        raise WorkflowError(
            "config: apply.images: not set; name the folder of new images in a config file"
            " (apply: {images: DIR, kind: rse, size: 4}) or with --config apply='{images: DIR}'"
        )
    if not Path(APPLY["images"]).is_dir():
        raise WorkflowError(f"config: apply.images: {APPLY['images']}: no such folder")
    kind = APPLY["kind"]
    size = SIZES[-1] if APPLY["size"] is None else APPLY["size"]
    selected = config["selection"]["ls"] if kind == "lse" else config["selection"]["rs"]
    per_source = size if kind == "lse" else size // len(RATERS)
    if kind == "rse" and size % len(RATERS):
        raise WorkflowError(
            f"config: apply.size: {size} is not divisible by the number of raters"
            f" ({len(RATERS)}: {', '.join(RATERS)})"
        )
    if per_source > selected:
        key = "selection.ls" if kind == "lse" else "selection.rs"
        raise WorkflowError(
            f"config: apply.size: {kind.upper()}_{size} needs {per_source} selected models"
            f" per source but only {selected} are selected ({key})"
        )
    return kind, size


def apply_counts(wildcards):
    kind, size = apply_ensemble()
    return f"{R}/apply/{kind}-{size}/counts.csv"


def apply_member_predictions(wildcards):
    members = checkpoints.apply_members.get(**wildcards).output.members
    return Path(members).read_text().split()
