"""No import cycles inside the package: modules that import each other (directly or round a
loop) cannot be read, tested or split one at a time.

An AST scan of ``src/modelcycle``: every ``import``/``from ... import`` of a ``modelcycle``
module, at any depth of the file (function-level imports too: they still bind the modules
together), except those under ``if TYPE_CHECKING:``, which never run. The strongly connected
components of that graph with more than one module are the cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import modelcycle

SRC = Path(modelcycle.__file__).resolve().parent

# Cycles another change is breaking at the time of writing, each with its owner; the test
# fails on any cycle not listed here. Remove an entry when its cycle is gone.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules(src: Path) -> dict[str, Path]:
    found = {}
    for path in src.rglob("*.py"):
        rel = path.relative_to(src.parent).with_suffix("")
        if "migrations" in rel.parts:  # Alembic scripts: loaded by Alembic, not imported
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def _under_type_checking(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _under_type_checking(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {m for m in found if m in modules and m != name}


def import_cycles(src: Path = SRC) -> list[frozenset[str]]:
    """Strongly connected components (Tarjan) of more than one module."""
    modules = _modules(src)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def test_no_import_cycles_inside_the_package() -> None:
    assert set(import_cycles()) - KNOWN_CYCLES == set()


def test_the_scan_finds_a_cycle(tmp_path: Path) -> None:
    # The scan itself can fail: two modules importing each other are found.
    package = tmp_path / "modelcycle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from modelcycle import b\n")
    (package / "b.py").write_text("def f():\n    from modelcycle.a import x\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from modelcycle import a\n"
    )
    (package / "d.py").write_text("from . import a\n")
    assert import_cycles(package) == [frozenset({"modelcycle.a", "modelcycle.b"})]
