"""The command lines the README and the documentation show: every `multirater ...` and `snakemake ...` line of
their fenced shell code blocks, with where it stands and whether it is marked as not meant to parse.

A line ending in `\\` continues on the next. A line that is not meant to parse (an example of an error, or a
placeholder) ends with a comment starting `# fails` or `# placeholder`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
MARKS = ("fails", "placeholder")
SEPARATORS = {"&&", "||", ";", "|"}
PROGRAMS = ("multirater", "snakemake")


@dataclass(frozen=True)
class Example:
    where: str  # file:line
    program: str  # multirater or snakemake
    words: list[str]  # the arguments after the program
    marked: bool  # marked as not meant to parse

    def __str__(self) -> str:
        return f"{self.where}: {self.program} {shlex.join(self.words)}"


def documents() -> list[Path]:
    """The READMEs and every page of the site (the drafts are not part of it)."""
    pages = sorted(p for p in (REPO / "docs").rglob("*.md") if "drafts" not in p.relative_to(REPO / "docs").parts)
    return [REPO / "README.md", REPO / "config" / "README.md", *pages]


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every fenced shell code block, continuations joined."""
    out: list[tuple[int, str]] = []
    fence, shell = None, False
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, shell = match.group(2), match.group(3).lower() in SHELL_LANGUAGES
            continue
        if fence is not None and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            fence = None
            continue
        if fence is None or not shell:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def comment_start(line: str) -> int:
    """Where a shell comment begins: a # that starts a word outside quotes (len(line) without one)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return i
    return len(line)


def split_commands(line: str) -> tuple[list[list[str]], str]:
    """The simple commands of a shell line (split at &&, ||, ; and |) and its trailing comment."""
    line = line.strip().removeprefix("$ ")
    cut = comment_start(line)
    comment = line[cut:].lstrip("#").strip()
    commands, current = [], []
    for token in shlex.split(line[:cut]):
        if token in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [c for c in commands if c], comment


def examples(program: str) -> list[Example]:
    """Every command line of ``program`` in the README and the docs."""
    found = []
    for document in documents():
        for number, line in shell_lines(document.read_text()):
            commands, comment = split_commands(line)
            marked = comment.startswith(MARKS)
            for words in commands:
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before the program
                    words = words[1:]
                if words and words[0] == program:
                    found.append(Example(f"{document.relative_to(REPO)}:{number}", program, words[1:], marked))
    return found
