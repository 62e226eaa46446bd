"""The packages are layers, and imports only go down: core (definitions and the engine) knows
nothing of the store, the notebook or the CLI; they plug in through ``core/hooks.py``.

Every import counts: ``import labloom``, each name of ``from . import a, b``, and imports inside
functions (a circle hidden inside a function is still a circle: it only waits for the call).
Imports under ``if TYPE_CHECKING:`` never run; they count for the direction between layers, not
for circles (two modules may name each other's types).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import labloom

ROOT = Path(labloom.__file__).parent
Module = tuple[str, ...]  # ("core", "engine"); () is labloom/__init__.py

# The layer of each module outside a package; a package is its own layer.
MODULE_LAYER = {
    "__init__.py": "face",  # the public face: it may import every layer
    "__main__.py": "face",
    "defaults.py": "wiring",  # what every run gets, plugged into core's hooks
    "limits.py": "wiring",  # the public limits API (issue 12 moves it into the store layer)
}
# What each layer may import besides itself. Must itself have no circle (checked).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "executors": {"core", "store"},  # the store keeps concurrency slots for every executor
    "dag": {"core"},
    "export": {"core", "store"},
    "notebook": {"core", "executors", "store", "dag", "export"},
    "schedule": {"core", "executors", "store", "export"},
    "server_extension": {"core", "executors", "store", "dag", "schedule", "export"},
    "wiring": {"core", "executors", "store", "dag", "notebook", "export", "schedule"},
    "cli": {"core", "executors", "store", "dag", "export", "schedule", "wiring"},
    "face": {"core", "executors", "store", "dag", "export", "notebook", "schedule", "cli",
             "server_extension", "wiring"},
}
# Known imports against the table, each with its owner; a fixed one must leave this list
# (a test fails on an exception that is no longer needed).
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("executors/dask_semaphores.py", "wiring"): "reads labloom.limits (issue 12 moves it down)",
    ("export/module_writer.py", "face"): "reads labloom.__all__ to name the public names",
}
# Packages whose modules must not import each other in a circle (add one when it has none).
NO_CIRCLES_IN = ("core", "executors", "store")


def _module_of(path: Path) -> Module:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _exists(module: Module) -> bool:
    folder = ROOT.joinpath(*module)
    return folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file()


def _type_only_nodes(tree: ast.AST) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return nodes


def _imports(path: Path, text: str | None = None) -> Iterator[tuple[Module, bool]]:
    """Each labloom module ``path`` (or ``text`` at its place) imports, and whether only for
    type checkers."""
    here = _module_of(path)
    package = here if path.name == "__init__.py" else here[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    type_only = _type_only_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "labloom":
                    yield tuple(parts[1:]), id(node) in type_only
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base: Module = package[: len(package) - (node.level - 1)]
            module = (*base, *(node.module.split(".") if node.module else []))
        elif (node.module or "").split(".")[0] == "labloom":
            module = tuple((node.module or "").split(".")[1:])
        else:
            continue
        for alias in node.names:  # `from . import a, b`: a and b, when they are modules
            sub = (*module, alias.name)
            yield (sub if _exists(sub) else module), id(node) in type_only


def _layer_of(module: Module) -> str:
    if not module:
        return MODULE_LAYER["__init__.py"]
    if (ROOT / module[0]).is_dir():
        return module[0]
    return MODULE_LAYER[f"{module[0]}.py"]


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "labextension" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One circle in ``graph`` (a path that comes back to its start), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_layer_table_has_no_circle() -> None:
    assert set(MODULE_LAYER.values()) <= set(ALLOWED)
    assert not _circle(ALLOWED), " -> ".join(_circle(ALLOWED))


def test_imports_go_down_the_layers() -> None:
    wrong, used = [], set()
    for path in _sources():
        layer = _layer_of(_module_of(path))
        for target, _ in _imports(path):
            to = _layer_of(target)
            if to == layer or to in ALLOWED[layer]:
                continue
            if (_rel(path), to) in EXCEPTIONS:
                used.add((_rel(path), to))
                continue
            wrong.append(f"{_rel(path)} imports {'.'.join(('labloom', *target))} "
                         f"({layer} -> {to})")
    assert not wrong, "\n".join(wrong)
    stale = set(EXCEPTIONS) - used
    assert not stale, f"no longer needed, remove from EXCEPTIONS: {sorted(stale)}"


def test_core_imports_nothing_above_it() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        for target, _ in _imports(path):
            assert _layer_of(target) == "core", f"{path.name} imports {'.'.join(target)}"


def test_no_import_circles_inside_a_package() -> None:
    for package in NO_CIRCLES_IN:
        graph: dict[str, set[str]] = {}
        for path in sorted((ROOT / package).rglob("*.py")):
            here = ".".join(_module_of(path))
            graph[here] = {
                ".".join(target) for target, type_only in _imports(path)
                if not type_only and target[:1] == (package,) and ".".join(target) != here
            }
        circle = _circle(graph)
        assert not circle, f"{package}: " + " -> ".join(circle)


def test_the_reader_sees_every_import() -> None:
    """What the old reader missed: `import labloom`, the later names of `from . import a, b`,
    imports inside functions; and what is no circle: imports under TYPE_CHECKING."""
    source = (
        "import labloom\n"
        "from . import events, hooks\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .flows import Flow\n"
        "def f():\n    from ..store import db\n"
    )
    assert dict(_imports(ROOT / "core" / "engine.py", source)) == {
        (): False, ("core", "events"): False, ("core", "hooks"): False,
        ("core", "flows"): True, ("store", "db"): False,
    }


def test_every_package_says_what_it_is() -> None:
    for package in sorted(p for p in ROOT.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, f"{package.name}/__init__.py: no first line"


def test_no_module_is_too_long_to_read() -> None:
    long = [
        f"{p.relative_to(ROOT)}: {n}" for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420
    ]
    assert not long, long
