# Shared by the rules: params derived from a rule's own files (the jobs' resources and the SLURM
# pre-flight: resources.smk).
from pathlib import Path


# --- params derived from a rule's own files (commands that take a folder or a file stem) ---------
def _pick(files, key):
    return getattr(files, key) if isinstance(key, str) else files[key]


def output_folder(key=0):
    """Params function: the folder of the rule's output ``key`` (a name or an index)."""
    return lambda wildcards, output: str(Path(_pick(output, key)).parent)


def input_folder(key):
    """Params function: the folder of the rule's input ``key`` (e.g. a model's, from its status.json)."""
    return lambda wildcards, input: str(Path(_pick(input, key)).parent)


def output_stem(key):
    """Params function: output ``key`` without its suffix (a figure command writes STEM.png and STEM.pdf)."""
    return lambda wildcards, output: str(Path(_pick(output, key)).with_suffix(""))


def dataset_file(dataset_input=DATASET_INPUT, generated=MANIFEST is None):
    """Params function: the dataset.yaml of a dataset input: inside the folder when the workflow generated
    the dataset (``generated``; the base dataset: BASE_MANIFEST is None), else the user's file itself.

    A function of the wildcards: Snakemake records its value with the job, as it did the plain path this
    replaced (a function of ``input`` would not be recorded, and results made before would rerun), and
    --lint no longer sees a param repeating an input's path (a user's manifest is both).
    """
    path = f"{dataset_input}/dataset.yaml" if generated else dataset_input
    return lambda wildcards: path


def base_weights(wildcards):
    """Params function: the base model's weights: the pretrain job's best.pt beside its status.json (BASE_INPUT),
    or the configured base checkpoint itself (recorded with the job, as ``dataset_file``).
    """
    return (
        str(Path(BASE_INPUT).with_name("best.pt"))
        if BASE_CHECKPOINT is None
        else BASE_CHECKPOINT
    )
