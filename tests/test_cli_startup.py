"""Every stage's command module registers its commands without importing a heavy library, so
`multirater --help` and the light commands start fast (heavy imports live inside the handlers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from multirater.cli import COMMAND_MODULES

HEAVY = ("torch", "torchvision", "pandas", "matplotlib", "scipy", "sklearn")


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_command_module_registers_without_heavy_imports(module):
    code = (
        f"import sys, argparse, {module} as m; "
        "m.register(argparse.ArgumentParser().add_subparsers()); "
        f"print(sorted(x for x in {HEAVY!r} if x in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_stage_package_has_its_rule_file():
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    for module in COMMAND_MODULES:
        stage = module.split(".")[1]
        assert (rules / f"{stage}.smk").is_file(), f"{module} has no workflow/rules/{stage}.smk"


# What the most frequent jobs load, and what they must not: each of these costs every such job its import time
# (scipy.optimize ~0.4 s, only Hungarian matching needs it; torch ~1.5 s, the review reads arrays).
JOB_IMPORTS = [
    ("multirater.training.loop", "scipy.optimize"),  # every training job (greedy matching for validation mAP)
    ("multirater.evaluation.evaluate", "scipy.optimize"),  # every evaluation job
    ("multirater.review.contact_sheet", "torch"),
]


@pytest.mark.parametrize("module, heavy", JOB_IMPORTS)
def test_frequent_jobs_do_not_import_what_they_do_not_use(module, heavy):
    code = f"import sys, {module}; print({heavy!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "d", "--splits", "s", "--strategy", "ls", "--config", "c", "--out", "o"],
    ["pretrain", "--dataset", "d", "--splits", "s", "--config", "c", "--out", "o"],
    ["predict", "--model", "m", "--images", "test", "--out", "o"],
    ["run-record", "--out", "o"],
])
def test_the_torch_commands_import_torch_before_running_with_its_objects_frozen(argv):
    from multirater.cli import build_parser

    assert "torch" in build_parser().parse_args(argv).imports
    # what main() does with them: imported with the collector off, then every object frozen, collector on again
    code = ("import gc, sys; from multirater.cli import import_frozen; import_frozen(('torch',)); "
            "print('torch' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 100_000)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]
