"""Small things a new user meets on the command line: each subcommand's --help opens with what it does;
`check` names an image by its file where it names it by id; nested `--config` values reach the schema as
numbers; and targets after `--configfile` are read as config files unless `--` ends the list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from multirater.cli import build_parser, main
from multirater.config import SCHEMA_PATH
from multirater.config.schema import validate
from multirater.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_every_subcommand_help_opens_with_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    [commands] = [action for action in parser._actions if action.dest == "command"]
    listed = {action.dest: action.help for action in commands._choices_actions}
    assert set(listed) == set(commands.choices) and all(listed.values())
    for name, summary in listed.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        # the paragraph after the usage (argparse wraps it to the terminal's width)
        paragraph = capsys.readouterr().out.split("\n\n")[1]
        assert " ".join(paragraph.split()) == f"{summary.rstrip('.')}.", (name, paragraph)


def test_check_names_the_image_file_of_a_box_outside_it(tiny_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rater = tiny_dataset.parent / "rater1.json"
    coco = json.loads(rater.read_text())
    image = coco["images"][0]
    box = next(a for a in coco["annotations"] if a["image_id"] == image["id"])
    box["bbox"] = [image["width"] - 2.0, 0.0, 10.0, 5.0]
    rater.write_text(json.dumps(coco))
    assert main(["check", "--dataset", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert (f"lies outside image {image['id']} ({image['file_name']}, {image['width']}x{image['height']} px) by "
            "more than 1 px") in err, err


def test_nested_config_values_given_as_text_are_read_as_the_schema_asks() -> None:
    # what `--config 'resources={train_threads: 2}' 'ensembles={sizes: [2, 4]}' ...` hands the workflow
    checked = validate({"resources": {"train_threads": "2", "gpu_partition": "123"},
                        "ensembles": {"sizes": ["2", "4"]}, "apply": {"size": "4"},
                        "training": {"lr": "1e-3", "augment": "false", "freeze": "true"},
                        "evaluation": {"iou": ["0.5"], "label_set": "null"}}, SCHEMA_PATH)
    assert checked["resources"]["train_threads"] == 2 and checked["ensembles"]["sizes"] == [2, 4]
    assert checked["resources"]["gpu_partition"] == "123"  # a string where the schema asks for one
    assert checked["apply"]["size"] == 4 and checked["evaluation"]["iou"] == [0.5]
    assert checked["training"]["lr"] == 0.001 and checked["training"]["augment"] is False
    assert checked["training"]["freeze"] is True and checked["evaluation"]["label_set"] is None
    with pytest.raises(UserError, match=r"^config: resources\.train_threads: 'two' is not of type 'integer'"):
        validate({"resources": {"train_threads": "two"}}, SCHEMA_PATH)


def test_targets_after_double_dash_are_targets_and_nested_config_values_plan(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    base = [str(BIN / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
            "--config", "resources={train_threads: 2}", "ensembles={sizes: [2, 4]}",
            "--configfile", str(REPO / "config" / "config.yaml")]
    done = subprocess.run([*base, "--", "data"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "\ndata " in done.stdout and "\ntrain " not in done.stdout  # only the data stage's jobs
    swallowed = subprocess.run([*base, "data"], capture_output=True, text=True, env=env, timeout=300)
    assert swallowed.returncode != 0 and "'data'" in swallowed.stdout + swallowed.stderr
