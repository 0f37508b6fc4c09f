"""MkDocs hook: the pages that must not drift from the code are written at build time.

- the home page is the README (its `docs/...` links made relative to the site);
- `<!-- generated: cli -->` becomes the command-line reference, from the argparse parser;
- `<!-- generated: config -->` becomes the configuration reference, from config/schema.yaml
  (a setting without a description is a warning, so `mkdocs build --strict` fails on it);
- `<!-- generated: modules -->` becomes the package map, from the modules' docstrings.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))  # the multirater of this checkout, installed or not

import cli_reference  # noqa: E402
import config_reference  # noqa: E402
import module_map  # noqa: E402
import yaml  # noqa: E402

from mkdocs.structure.files import File  # noqa: E402

log = logging.getLogger("mkdocs.hooks.reference_pages")
SCHEMA = REPO / "workflow" / "multirater" / "config" / "schema.yaml"
PACKAGE = REPO / "workflow" / "multirater"


def home_page() -> str:
    """The README as the site's home page: its links into docs/ point at the pages themselves."""
    return re.sub(r"\]\(docs/", "](", (REPO / "README.md").read_text())


def on_files(files, config):  # noqa: ANN001, ANN201 (MkDocs' hook signature)
    files.append(File.generated(config, "index.md", content=home_page()))
    return files


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference.page())
    if "<!-- generated: config -->" in markdown:
        for key in config_reference.undescribed(yaml.safe_load(SCHEMA.read_text())):
            log.warning("schema.yaml: %s has no description", key)
        markdown = markdown.replace("<!-- generated: config -->", config_reference.page(SCHEMA))
    if "<!-- generated: modules -->" in markdown:
        from multirater.cli import COMMAND_MODULES  # the stages, in workflow order

        stages = [name.split(".")[1] for name in COMMAND_MODULES]
        markdown = markdown.replace("<!-- generated: modules -->", module_map.page(PACKAGE, stages))
    return markdown
