"""The one user-facing error type: a problem with a file, an item in it, or a setting."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix: names the file, the item and what is wrong.

    Rendered as one line, ``FILE: ITEM: PROBLEM``; the CLI prints it without a traceback
    and exits non-zero.
    """

    def __init__(self, problem: str, file: str | Path | None = None, item: str | None = None):
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.item = item
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.item) if p]
        return ": ".join(parts + [self.problem])


class UserErrors(UserError):
    """Several problems found in one pass (``multirater check`` reports every one)."""

    def __init__(self, errors: list[UserError]):
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} problem(s) found")

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ErrorCollector:
    """Collects problems during validation so every one is reported, not just the first."""

    def __init__(self) -> None:
        self.errors: list[UserError] = []

    def add(self, problem: str, file: str | Path | None = None, item: str | None = None) -> None:
        self.errors.append(UserError(problem, file, item))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise UserErrors(self.errors)
