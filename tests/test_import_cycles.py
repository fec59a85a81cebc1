"""No import cycles among the modules of randar/ and randar_app/, found statically (ast, nothing is imported).

Every import counts, also one inside a function: a lazy import is how a cycle usually hides (the engine and
its fast path imported each other that way). So does one under `if TYPE_CHECKING:`: it does not run, but two
modules that name each other's types still cannot be read, changed or moved one without the other (a cycle is
a cycle). An edge goes to the module an import names (`from .decoding import fast` -> randar.decoding.fast if that is
a module, else randar.decoding); a package's __init__ is a module like any other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark: list[pytest.MarkDecorator] = []  # the whole file's markers: none (quick); see tests/marker_check.py

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("randar", "randar_app")


def module_names() -> dict[str, Path]:
    names = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> None:
        while target and target not in known:  # `import a.b.c` of a name inside a module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                resolve(full if full in known else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_the_graph_sees_the_imports_it_should():
    """The walker itself: relative, absolute, lazy, type-only and package imports become edges."""
    graph = import_graph()
    assert "randar.studio" in graph["randar_app.run_loop"]  # `from randar.studio import ...` under TYPE_CHECKING
    assert "randar.decoding.plain" in graph["randar.decoding"]  # `from .plain import decode_plain` in __init__
    assert "randar.decoding" in graph["randar.tasks.job"]  # `from ..decoding import ...`
    assert "randar.decoding" in graph["randar.train.evaluate"]  # a lazy import inside a function
    assert "randar.decoding.request" in graph["randar.decoding.fast"] or "randar.decoding.loop" in graph["randar.decoding.fast"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_randar_and_randar_app():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_every_module_imports_and_every_imported_name_exists():
    """The static graph above says nothing of names: a moved or removed name (an import of a constant the package
    face no longer hands on) fails only when its module is imported. Every module is imported here, in a fresh
    process (gradio and torch included: a few seconds)."""
    import subprocess
    import sys

    names = sorted(n for n in module_names() if not n.endswith("__main__"))
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
