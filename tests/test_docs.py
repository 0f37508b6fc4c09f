"""The documentation: the README fits on a screen and links the newcomer's questions; the site builds with
--strict (a broken link or anchor fails); its generated pages hold every command, option and setting with
the loader's defaults; and every example command line parses with the real parser and names real targets."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from docs_examples import REPO, Example, examples, shell_lines, split_commands

sys.path.insert(0, str(REPO / "docs" / "hooks"))
import cli_reference  # noqa: E402
import config_reference  # noqa: E402

from multirater.cli import build_parser  # noqa: E402
from multirater.config import SCHEMA_PATH  # noqa: E402

README_LIMIT = 15_000  # bytes
MULTIRATER = examples("multirater")
SNAKEMAKE = examples("snakemake")


def test_readme_fits_on_a_screen_and_links_what_a_newcomer_asks():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= README_LIMIT
    for question in ("docs/slurm.md#partition-account-and-gpus",  # SLURM partition, account and GPUs
                     "docs/multiorg.md#import",  # how to import MultiOrg
                     "docs/metrics.md#d-ece-soft"):  # what D-ECE-soft means
        assert f"]({question})" in readme, question


def test_site_builds_strictly(tmp_path: Path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Two commands" in (site / "index.html").read_text()  # the README is the home page
    cli = (site / "cli.html").read_text()
    for words, _help, _parser in cli_reference.walk(build_parser()):
        assert f'id="{"-".join(words)}"' in cli, words
    assert 'id="resources"' in (site / "configuration.html").read_text()
    assert "drafts" not in {p.name for p in site.iterdir()}


def test_a_broken_link_fails_the_build(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](slurm.md#no-such-section)\n")
    config = {"site_name": "x", "docs_dir": str(docs), "validation": {"anchors": "warn"}}
    (docs / "slurm.md").write_text("# Slurm\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode != 0 and "no-such-section" in done.stderr


def test_the_command_line_page_lists_every_command_and_option():
    page = cli_reference.page()
    parser = build_parser()
    commands = list(cli_reference.walk(parser))
    assert len(commands) >= 20
    for words, _help, sub in commands:
        assert f"## {' '.join(words)}\n" in page
        section = page.split(f"## {' '.join(words)}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in section, (words, option)


def documented_settings() -> dict[str, str]:
    """key -> default as the configuration page writes it (the text between backticks)."""
    rows = re.findall(r"^\| `([^`]+)` \| `?([^|`]*)`? \|", config_reference.page(SCHEMA_PATH), re.M)
    return dict(rows)


def flatten(values: dict, prefix: str) -> dict[str, object]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_configuration_page_gives_the_loaders_defaults():
    from multirater.config.schema import validate
    from multirater.training.settings import defaults

    loaded = flatten(validate({}, SCHEMA_PATH), "")
    loaded.update(flatten(defaults("training"), "training."))
    loaded.update(flatten(defaults("model"), "model."))
    documented = documented_settings()
    for key, value in loaded.items():
        assert key in documented, key
        assert yaml.safe_load(documented[key]) == value, (key, documented[key], value)
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert config_reference.undescribed(schema) == []


def test_examples_are_found_with_their_marks():
    text = "x\n```bash\nmultirater check --dataset a.yaml  # placeholder\nsnakemake figures \\\n  -n\n```\n" \
           "```yaml\nmultirater: not a command\n```\n"
    assert shell_lines(text) == [(3, "multirater check --dataset a.yaml  # placeholder"),
                                 (4, "snakemake figures    -n")]
    assert split_commands("cd x && multirater check --dataset 'a b.yaml'  # fails: why") == (
        [["cd", "x"], ["multirater", "check", "--dataset", "a b.yaml"]], "fails: why")
    assert len(MULTIRATER) >= 20 and len(SNAKEMAKE) >= 10
    assert not parses(Example("x", "multirater", ["evaluate", "--gt", "a.json"], False))  # no --pred, --out
    assert not parses(Example("x", "multirater", ["fuse", "--out", "f.json", "--iou", "high"], False))
    assert parses(Example("x", "multirater", ["fuse", "--help"], False))


def parses(example: Example) -> bool:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(example.words)
        except SystemExit as exit_:
            return exit_.code == 0  # --help, --version
    return True


@pytest.mark.parametrize("example", MULTIRATER, ids=str)
def test_every_multirater_example_parses(example: Example):
    assert parses(example) != example.marked, (
        f"{example}: marked as not meant to parse, but it does" if example.marked else f"{example}: does not parse")


@pytest.fixture(scope="module")
def rules() -> set[str]:
    done = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], capture_output=True, text=True,
                          cwd=REPO, check=True)
    return set(done.stdout.split())


def makes(target: str, workdir: Path) -> bool:
    """Whether the workflow can make a file target (a dry run in an empty working directory)."""
    done = subprocess.run([sys.executable, "-m", "snakemake", target, "-n", "-s", str(REPO / "Snakefile"), "-d",
                           str(workdir), "--configfile", str(REPO / "config" / "config.yaml")],
                          capture_output=True, text=True)
    return done.returncode == 0


def snakemake_problems(example: Example, rules: set[str], workdir: Path) -> list[str]:
    """What is wrong with a snakemake command line, read by Snakemake's own parser ([] when nothing)."""
    from snakemake.cli import get_argument_parser

    with contextlib.redirect_stderr(io.StringIO()):
        args = get_argument_parser().parse_args(example.words)
    problems = []
    for configfile in args.configfile or []:
        # --configfile takes every word after it: a target written there would be read as a config file
        if configfile.suffix not in (".yaml", ".yml"):
            problems.append(f"{configfile} is no config file")
        elif configfile.parts[0] == "config" and not (REPO / configfile).exists():
            problems.append(f"no {configfile}")
    for profile in args.profile if isinstance(args.profile, list) else [args.profile] if args.profile else []:
        if not (REPO / profile).is_dir():
            problems.append(f"no profile {profile}")
    # a word with a / or a . names a file, any other a rule
    problems += [f"{target} is no rule or file target" for target in args.targets
                 if target not in rules and not (re.search(r"[/.]", target) and makes(target, workdir))]
    return problems


def test_wrong_snakemake_lines_are_caught(rules: set[str], tmp_path: Path):
    def problems(line: str) -> list[str]:
        return snakemake_problems(Example("x", "snakemake", line.split(), False), rules, tmp_path)

    assert problems("figures --profile profiles/local --configfile config/paper.yaml") == []
    assert problems("--configfile config/paper.yaml figures") == ["figures is no config file"]
    assert problems("--configfile config/nope.yaml") == ["no config/nope.yaml"]
    assert problems("--profile profiles/nope all") == ["no profile profiles/nope"]
    assert problems("figure6") == ["figure6 is no rule or file target"]
    assert problems("results/tables/nope.csv") == ["results/tables/nope.csv is no rule or file target"]


@pytest.mark.parametrize("example", SNAKEMAKE, ids=str)
def test_every_snakemake_example_names_real_targets(example: Example, rules: set[str], tmp_path: Path):
    assert snakemake_problems(example, rules, tmp_path) == [], example
