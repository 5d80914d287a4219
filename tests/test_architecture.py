"""The layering of docs/ARCHITECTURE.md holds: no import cycles, package edges one way.

Imports are read from the source (``ast``), counting imports inside functions and
``importlib.import_module("...")`` calls with a literal name, because a lazy import still
ties two modules together. Imports under ``if TYPE_CHECKING:`` are for the type checker only
and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "abkit"

# Modules every package may import: stdlib-only foundations.
FOUNDATION = {
    "errors",
    "vocabulary",
    "extras",
    "timeutil",
    "locations",
    "_version",
    "_lazy",
    "results",
}

# package -> packages it may import (besides itself and the foundation).
ALLOWED: dict[str, set[str]] = {
    "assignment": set(),
    "stats": set(),
    "metrics": {"stats"},
    "store": {"assignment"},
    "ingest": {"store", "assignment"},
    "analysis": {"store", "metrics", "stats", "assignment"},
    "engines": {"analysis", "store", "metrics", "stats", "assignment"},
    "lifecycle": {"analysis", "store", "ingest", "metrics", "stats", "assignment", "engines"},
    "report": {"analysis", "metrics", "stats", "lifecycle", "assignment"},
    "testing": set(),
}
# The layers above everything: they may import any package.
TOP = {"cli", "demo", "simulate", "__main__", "__init__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_in(source: str, module: str, *, is_package: bool) -> Iterator[str]:
    """The abkit modules that ``module`` (whose text is ``source``) imports."""
    tree = ast.parse(source)
    skip = _type_checking_lines(tree)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            if name == "abkit" or name.startswith("abkit."):
                target = _resolve(name)
                # A submodule importing its own package's __init__ is how Python loads it
                # anyway; that edge is no cycle a reader must untangle.
                if target and target != module and not module.startswith(target + "."):
                    yield target


def imports_of(module: str) -> Iterator[str]:
    path = MODULES[module]
    source = path.read_text(encoding="utf-8")
    return imports_in(source, module, is_package=path.name == "__init__.py")


GRAPH = {m: set(imports_of(m)) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_reader_sees_function_level_and_importlib_imports() -> None:
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from abkit.report import render\n"
        "def f():\n"
        "    from abkit.stats.srm import srm_test\n"
        "    return importlib.import_module('abkit.store.store')\n"
    )
    found = set(imports_in(source, "abkit.analysis.x", is_package=False))
    assert found == {"abkit.stats.srm", "abkit.store.store"}


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_package_edges_follow_the_architecture() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        source = _package(module)
        if source in TOP or source in FOUNDATION:
            if source in FOUNDATION:
                wrong += [f"{module} -> {t}" for t in targets if _package(t) not in FOUNDATION]
            continue
        allowed = ALLOWED.get(source)
        assert allowed is not None, f"package {source!r} is not in the architecture table"
        for target in targets:
            dest = _package(target)
            if dest != source and dest not in FOUNDATION and dest not in allowed:
                wrong.append(f"{module} -> {target}")
    assert wrong == []
