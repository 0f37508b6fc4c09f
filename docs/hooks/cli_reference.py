"""The command-line reference page, written from the `multirater` argparse parser itself, so that it
cannot drift from what the commands accept."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

USAGE_WIDTH = 100  # fixed, so that the page does not depend on the terminal of whoever builds it


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name, in the order they were added ({} when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help of each subcommand (what `multirater --help` lists)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def walk(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str,
                                                                                         argparse.ArgumentParser]]:
    """Every leaf command as (its words after `multirater`, its help, its parser), depth first."""
    helps = command_help(parser)
    for name, sub in subcommands(parser).items():
        if subcommands(sub):
            yield from walk(sub, (*words, name))
        else:
            yield (*words, name), helps.get(name, ""), sub


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


# Backticks stay: a description may quote a name as code.
MARKDOWN_ESCAPES = {"\\": "\\\\", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|",
                    "<": "&lt;", ">": "&gt;"}


CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def escape(text: str) -> str:
    """Plain text as Markdown that shows it literally (also inside a table cell); code spans stay code."""
    out, end = [], 0
    for span in CODE_SPAN.finditer(text):
        out.append("".join(MARKDOWN_ESCAPES.get(char, char) for char in text[end:span.start()]))
        out.append(span.group(0))  # a table cell may hold a | inside a code span as it is
        end = span.end()
    out.append("".join(MARKDOWN_ESCAPES.get(char, char) for char in text[end:]))
    return "".join(out)


def option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    names = formatter._format_action_invocation(action)
    helptext = formatter._expand_help(action) if action.help else ""
    facts = []  # the choices are in the invocation already ({a,b})
    if action.required:
        facts.append("required")
    elif (action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in helptext
          and not isinstance(action, argparse._StoreTrueAction)):
        default = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        facts.append(f"default {default}")
    meaning = "; ".join(part for part in (helptext, *facts) if part)
    return f"| `{names}` | {escape(meaning)} |"


def page() -> str:
    """The reference as Markdown: one section per command, its help, usage and options."""
    from multirater.cli import build_parser

    parser = build_parser()
    lines = []
    for words, helptext, sub in walk(parser):
        name = " ".join(words)
        lines += [f"## {name}", "", escape(helptext[:1].upper() + helptext[1:]) + "." if helptext else "", "",
                  "```text", usage(sub), "```", ""]
        options = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        if options:
            lines += ["| option | meaning |", "|---|---|"]
            lines += [option_row(sub, action) for action in options]
            lines.append("")
    return "\n".join(lines)
