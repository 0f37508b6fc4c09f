"""The package map of the architecture page, read from the modules' own docstrings (without importing
them), so that it follows the code as modules are added, moved or split."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cli_reference import escape


# a Sphinx cross-reference in a docstring, :func:`name` or :class:`~a.b.Name`: shown as the code span `name`
ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj):`(~?)([^`]+)`")


def summary(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line ("" without one)."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(docstring.split("\n\n")[0].split())
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


def package_lines(package: Path, root: Path) -> list[str]:
    name = package.relative_to(root).as_posix()
    own = summary(package / "__init__.py") if (package / "__init__.py").exists() else ""
    if own.startswith(f"{package.name}: "):  # "calibration: post-hoc calibrators ..." under its own heading
        own = own[len(package.name) + 2:]
        own = own[:1].upper() + own[1:]
    lines = [f"### {name}/", ""]
    if own and own != package.name:
        lines += [escape(own), ""]
    for module in sorted(package.glob("*.py")):
        if module.name != "__init__.py":
            lines.append(f"- `{module.stem}`: {escape(summary(module)) or '(no docstring)'}")
    lines.append("")
    for sub in sorted(p for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        lines += package_lines(sub, root)
    return lines


def page(root: Path, stages: list[str]) -> str:
    """One section per package: the stages in workflow order, then the shared ones alphabetically."""
    packages = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "__init__.py").exists()]
    ordered = [root / s for s in stages if (root / s) in packages] + [p for p in packages
                                                                        if p.name not in stages]
    lines = [escape(summary(root / "__init__.py")), ""]
    lines += [f"- `{m.stem}`: {escape(summary(m))}" for m in sorted(root.glob("*.py"))
              if m.name != "__init__.py" and summary(m)]
    lines.append("")
    for package in ordered:
        lines += package_lines(package, root)
    return "\n".join(lines)
