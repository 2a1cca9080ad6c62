"""The layout the README's Architecture section promises: stages at the top, helpers in packages
that never import a stage, no import cycles, small modules and functions. Imports are read with
``ast`` (function-level ones included), so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kopretrain.runs.registry import STAGES

PACKAGE = Path(__file__).resolve().parent.parent / "kopretrain"
STAGE_MODULES = {module for module, _ in STAGES.values()}
TOP_LEVEL_NON_STAGES = {"kopretrain", "kopretrain.__main__", "kopretrain.cli", "kopretrain.pipeline", "kopretrain.testing"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """The kopretrain modules a file imports anywhere in it (``from kopretrain.x import y`` counts
    ``kopretrain.x.y`` when that is a module, else ``kopretrain.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kopretrain"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kopretrain"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and not (MODULES[m].name == "__init__.py" and m != "kopretrain")} - {"kopretrain"}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_top_level_holds_only_stages_and_the_entry_points():
    top = {name for name, path in MODULES.items() if name.count(".") <= 1 and path.name != "__init__.py"}
    top |= {"kopretrain"}
    assert top - STAGE_MODULES - TOP_LEVEL_NON_STAGES == set()


def test_no_helper_imports_a_stage():
    # experiments drive whole stages, as the pipeline runner does: they are consumers, not helpers
    helpers = [name for name in MODULES if name.count(".") >= 2 and not name.startswith("kopretrain.experiments")]
    bad = {name: sorted(GRAPH[name] & STAGE_MODULES) for name in helpers if GRAPH[name] & STAGE_MODULES}
    assert bad == {}


def test_no_import_cycles():
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name):
    source = MODULES[name].read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{name}: split it by responsibility"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
