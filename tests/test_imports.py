"""The import graph of oodbench: no circles, and no import from a lower layer into a higher one.

Module-level and function-level imports both count (a function-level import is a circle that
only waits for its call). Layers, lowest first; a module may import its own layer and lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "oodbench"

# Lowest first. A module not listed belongs to the layer of its first listed parent package.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("oodbench.names", "oodbench.errors", "oodbench.paths", "oodbench.atomic", "oodbench.registry",
     "oodbench.progress", "oodbench.provenance", "oodbench.devices", "oodbench.options"),
    ("oodbench.store", "oodbench.checkpoint_format", "oodbench.metrics"),
    # training.recipes is plain configuration (no torch, no data): suite files name recipes.
    ("oodbench.data", "oodbench.results", "oodbench.training.recipes"),
    ("oodbench.models", "oodbench.detectors", "oodbench.plots", "oodbench.report"),
    ("oodbench.training", "oodbench.export"),
    ("oodbench.runner", "oodbench.figures"),
    ("oodbench.api",),
    ("oodbench.sweep",),
    ("oodbench.cli", "oodbench.__main__"),
)  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The oodbench modules `name` imports anywhere in its file (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for child in block.body
        for node in ast.walk(child)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("oodbench") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # A package's __init__ is imported with any of its modules: `import a.b` runs a/__init__.py,
    # but that is no circle of the code itself; edges to a parent package are left out.
    # The package face `oodbench` (its version and lazy public names) is left out as well.
    return {
        name: {t for t in targets if not name.startswith(t + ".")}
        for name, targets in graph.items()
        if name != "oodbench"
    }


def _layer(name: str) -> int:
    while name:
        for index, layer in enumerate(LAYERS):
            if name in layer:
                return index
        name = name.rpartition(".")[0]
    raise AssertionError(f"{name}: not in any layer of tests/test_imports.py")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_no_upward_imports():
    upward = [
        f"{name} -> {target}"
        for name, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(name)
    ]
    assert upward == []
