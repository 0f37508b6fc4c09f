"""The `multirater` command line: one entry point, and the one place that turns a user error
into a one-line message and a non-zero exit (no traceback)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import UserError

# Each module registers its own subcommands; they import heavy libraries (torch, matplotlib)
# only inside their handlers, so `multirater --help` and the evaluation side start fast.
COMMAND_MODULES = (
    "multirater.commands.data",
    "multirater.commands.engine",
    "multirater.commands.train",
    "multirater.commands.pipeline",
    "multirater.commands.apply",
)

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multirater",
        description="Calibrated object detectors from multi-rater microscopy annotations.",
    )
    parser.add_argument("--version", action="version", version=f"multirater {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command group is not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
