"""The import graph of the package follows its layers (multirater.layers): no cycle, no arrow from a layer to a
later one. Every import counts: module-level, inside functions and under ``if TYPE_CHECKING``."""

from __future__ import annotations

import ast
from pathlib import Path

from multirater.layers import LAYERS, PACKAGES, layer_of

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "multirater"
ENTRY = len(LAYERS)  # the root modules (cli, __main__, workflow_config) lie above every layer


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imported_modules(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that ``source`` (module ``name``) imports anywhere in its text: for ``from A import
    b`` the module ``A.b`` when it is one, else ``A``; relative imports resolved against the module's package."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` names a.b.c; an attribute names its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(root)
    return {name: imported_modules(path.read_text(), name, path.name == "__init__.py", set(modules))
            for name, path in modules.items()}


def layer(module: str) -> int:
    """The position of a module's layer; the package's __init__ is below all, its other root modules above all."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return layer_of(parts[1]) if parts[1] in PACKAGES else ENTRY


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its modules (the first again at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_resolver_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "multirater"
    for name in ("core/__init__", "core/errors", "data/__init__", "data/a", "data/b", "evaluation/__init__",
                 "evaluation/c"):
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f"{name}.py").write_text("")
    (pkg / "data" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from multirater.core.errors import UserError\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from multirater.evaluation import c\n"
        "def f():\n    import multirater.evaluation.c.thing\n    from ..core import errors\n    import numpy\n")
    graph = import_graph(pkg)
    assert graph["multirater.data.a"] == {"multirater.core.errors", "multirater.data.b", "multirater.evaluation.c"}
    assert find_cycle(graph) is None
    (pkg / "evaluation" / "c.py").write_text("def g():\n    from multirater.data.a import f\n")
    assert find_cycle(import_graph(pkg)) == ["multirater.data.a", "multirater.evaluation.c", "multirater.data.a"]


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(PACKAGES), "add a new package to multirater.layers"


def test_the_cli_registers_the_stages_in_layer_order():
    from multirater.cli import COMMAND_MODULES
    from multirater.layers import STAGES

    assert COMMAND_MODULES == tuple(f"multirater.{stage}.commands" for stage in STAGES)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_module_imports_a_later_layer():
    backward = sorted(f"{source} -> {target}" for source, targets in import_graph().items() for target in targets
                      if layer(target) > layer(source))
    assert backward == [], f"layers, lowest first: {LAYERS}"

