"""The `multirater` command line: one entry point, and the one place that turns a user error
into a one-line message and a non-zero exit (no traceback)."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

# One OpenBLAS thread unless the user asks for more: no command multiplies large matrices with numpy, and
# starting OpenBLAS's thread pool at `import numpy` costs tens of milliseconds per command (more on a busy node).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from multirater import __version__
from multirater.core.errors import UserError
from multirater.layers import STAGES

# One command module per stage, named after its workflow/rules/<stage>.smk; each registers its own
# subcommands and imports heavy libraries (torch, matplotlib) only inside its handlers, so
# `multirater --help` and the evaluation side start fast.
COMMAND_MODULES = tuple(f"multirater.{stage}.commands" for stage in STAGES)

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multirater",
        description="Calibrated object detectors from multi-rater microscopy annotations.",
    )
    parser.add_argument("--version", action="version", version=f"multirater {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    # `multirater COMMAND --help` opens with the line `multirater --help` lists for it
    for action in subparsers._choices_actions:
        command = subparsers.choices[action.dest]
        if command.description is None and action.help:
            command.description = action.help.rstrip(".") + "."
    return parser


def import_frozen(modules: Sequence[str]) -> None:
    """Import ``modules`` (those the command would import first anyway) with the cyclic garbage collector off,
    then freeze every object there is, so no later collection walks them.

    torch and torchvision create about a million objects that live as long as the process: collecting while
    they are made, and walking them again in each later full collection, cost a tiny training or prediction
    job a third of its time (benchmarks/bench_startup.py). A command names them with ``set_defaults(imports=)``.
    """
    if not modules:
        return
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        gc.enable()
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import_frozen(getattr(args, "imports", ()))
    try:
        result = args.func(args)
    except UserError as exc:
        for line in str(exc).splitlines():
            print(f"multirater {args.command}: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"multirater {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
