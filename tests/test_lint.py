"""The workflow's own code standards, checked in CI: snakefmt formatting and `snakemake --lint`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (make install)"
    return found


def test_snakefiles_are_snakefmt_formatted():
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([_tool("snakefmt"), "--check", *files], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _lint(config: Path, directory: Path) -> None:
    # --directory keeps .snakemake/ and any results out of the checkout.
    result = subprocess.run(
        [_tool("snakemake"), "--lint", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(directory),
         "--configfile", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output


def test_snakemake_lint_reports_nothing(tmp_path):
    _lint(ROOT / "config" / "config.yaml", tmp_path)


def test_snakemake_lint_reports_nothing_with_the_multiorg_config(tmp_path):
    """config/multiorg.yaml as shipped, on MultiOrg imported where it expects it (data/multiorg/, from the
    fixture in the published layout): its own dataset, label sets and rules (calibration, tiling) lint clean."""
    from multiorg_fixture import write_multiorg

    from multirater.cli import main

    write_multiorg(tmp_path / "download")
    assert main(["import", "--format", "multiorg", "--images", str(tmp_path / "download"),
                 "--out", str(tmp_path / "data" / "multiorg"), "--majority"]) == 0
    # the base checkpoint it names must exist (model.base_checkpoint is checked at parse time); lint reads none
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "goat.bin").write_bytes(b"")
    _lint(ROOT / "config" / "multiorg.yaml", tmp_path)


RULE_HEADER = re.compile(r"^\s*(?:rule|checkpoint) (\w+):\s*$", re.M)
DIRECTIVE = re.compile(r"^\s+(\w+):", re.M)


def _rules() -> dict[str, str]:
    """Every rule's text (from its header to the next rule's), by name, over Snakefile and the .smk files."""
    rules = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text()
        headers = list(RULE_HEADER.finditer(text))
        for header, following in zip(headers, headers[1:] + [None]):
            rules[header.group(1)] = text[header.end():following.start() if following else len(text)]
    return rules


def test_every_working_rule_writes_its_log_and_has_a_benchmark():
    """A rule that runs something (shell: or run:) declares a log it really writes and a benchmark; rules
    that only gather inputs (targets such as `all`) are exempt."""
    rules = _rules()
    assert {"train", "predict", "members", "fuse", "evaluate_detections", "sweep_file"} <= set(rules)
    for name, body in rules.items():
        directives = set(DIRECTIVE.findall(body))
        if not directives & {"shell", "run"}:
            assert directives <= {"input"}, (name, directives)
            continue
        assert {"log", "benchmark"} <= directives, (name, directives)
        writes_log = "{log}" in body if "shell" in directives else "log[0]" in body
        assert writes_log, f"rule {name} declares a log it never writes"


def test_rules_use_no_shell_tricks_for_paths():
    """The CLI takes the paths it needs: no $(dirname ...), $(cat ...) or other command substitution."""
    for name, body in _rules().items():
        if "shell:" not in body:
            continue
        command = [line for line in body.split("shell:", 1)[1].splitlines() if not line.strip().startswith("#")]
        assert not any("$(" in line or "`" in line for line in command), name



def test_every_submitted_rule_says_which_kind_of_slurm_job_it_is():
    """A rule that runs as a cluster job (not a local rule) takes its kind's site settings (partition,
    account, ...; workflow/rules/resources.smk): the GPU jobs' through TRAIN_RESOURCES/PREDICT_RESOURCES, a
    model's evaluation through EVALUATION_JOB, every other one through CPU_JOB; a rule without any would go
    to the cluster's default partition whatever the site file says."""
    snakefile = (ROOT / "Snakefile").read_text()
    local = set(re.findall(r"^\s+(\w+),$", snakefile.split("localrules:")[1].split("\nrule ")[0], re.M))
    kinds = ("CPU_JOB", "EVALUATION_JOB", "TRAIN_RESOURCES", "PREDICT_RESOURCES")
    unmarked = [name for name, body in _rules().items()
                if name not in local and set(DIRECTIVE.findall(body)) & {"shell", "run"}
                and not any(kind in body for kind in kinds)]
    assert unmarked == []


SNAKEMAKE_BLOCK = re.compile(r"^(\s*)(?:rule|checkpoint|localrules|wildcard_constraints|onstart|onsuccess|onerror|"
                             r"include|configfile|report)\b[^:]*:")


def python_of(text: str) -> str:
    """The Python of a rule file: Snakemake's blocks (rules, include:, onstart: ...) left out, a ``pass`` where a
    block leaves its ``if`` empty."""
    out, skip = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip is not None and (not line.strip() or indent > skip):
            continue
        skip = None
        match = SNAKEMAKE_BLOCK.match(line)
        if match:
            skip = len(match.group(1))
            out.append(f"{match.group(1)}pass")
            continue
        out.append(line)
    return "\n".join(out)


def global_assignments(statements: list, name: str) -> int:
    """How often one run of the workflow assigns ``name`` at the top level, on the path that assigns it most
    (the branches of an ``if``, and a ``try`` body and its handlers, are alternatives)."""
    import ast

    count = 0
    for node in statements:
        if isinstance(node, ast.If):
            count += max(global_assignments(node.body, name), global_assignments(node.orelse, name))
        elif isinstance(node, ast.Try):  # the body, or a handler when the body failed (before assigning)
            count += max([global_assignments(node.body + node.orelse, name)]
                         + [global_assignments(h.body, name) for h in node.handlers])
            count += global_assignments(node.finalbody, name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            count += sum(isinstance(t, ast.Name) and t.id == name for target in targets for t in ast.walk(target))
    return count


def test_the_python_of_a_rule_file_counts_reassigned_globals():
    import ast

    text = ("X = 1\nif A:\n    Y = 2\n    rule r:\n        input:\n            'a'\nelse:\n    Y = 3\n"
            "include: 'b.smk'\nif B:\n    X = 4\n")
    module = ast.parse(python_of(text)).body
    assert (global_assignments(module, "X"), global_assignments(module, "Y")) == (2, 1)


def test_rule_files_are_small_and_assign_each_global_once():
    """Each rule file holds one concern (at most 200 lines), and no global is assigned twice on any path
    through the workflow's files (a reassigned global's value depends on where it is read)."""
    import ast

    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    assert [f.name for f in files if len(f.read_text().splitlines()) > 200] == []
    statements = [node for f in files for node in ast.parse(python_of(f.read_text()), str(f)).body]
    names = {node.id for node in ast.walk(ast.Module(statements, []))
             if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    assert sorted(n for n in names if global_assignments(statements, n) > 1) == []
