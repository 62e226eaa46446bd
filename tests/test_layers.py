"""The packages are layers, and imports only go down: core (definitions and the engine) knows
nothing of the store, the notebook or the CLI; they plug in through ``core/hooks.py``. Function-
local imports count too: a cycle hidden inside a function is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import labloom

ROOT = Path(labloom.__file__).parent
TOP = "(top)"  # labloom/__init__.py, defaults.py, limits.py: the public face and its wiring

# What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "executors": {"core", "store"},  # the store keeps concurrency slots for every executor
    "store": {"core"},
    "dag": {"core"},
    "export": {"core", "store"},
    "notebook": {"core", "executors", "store", "dag", "export", TOP},
    "schedule": {"core", "executors", "store", "export"},
    "server_extension": {"core", "executors", "store", "dag", "schedule", "export", TOP},
    "cli": {"core", "executors", "store", "dag", "export", "schedule", TOP},
    TOP: {"core", "executors", "store", "dag", "export", "notebook", "schedule", "cli",
          "server_extension"},
}
# Known and owned elsewhere: the Dask limiter reads limits through the public module
# (issue 12 moves limits into the store layer).
EXCEPTIONS = {("executors/dask_semaphores.py", TOP)}
# A layer that may use only some modules of another: (layer, other) -> those modules.
NARROW: dict[tuple[str, str], set[str]] = {}


def _layer_of(parts: list[str]) -> str:
    if parts and (ROOT / parts[0]).is_dir():
        return parts[0]
    return TOP


def _imports(path: Path) -> list[list[str]]:
    rel = list(path.relative_to(ROOT).parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = rel[:-1][: len(rel) - node.level] if node.level > 1 else rel[:-1]
            module = [*base, *(node.module.split(".") if node.module else [])]
            if not node.module:  # from .. import x
                module = [*module, *(alias.name for alias in node.names[:1])]
            found.append(module)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labloom."):
            found.append((node.module or "").split(".")[1:])
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1:] for a in node.names if a.name.startswith("labloom.")]
    return found


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = list(path.relative_to(ROOT).parts)
        layer = _layer_of(rel)
        for target in _imports(path):
            to = _layer_of(target) if target else TOP
            if to == layer or to in ALLOWED[layer]:
                narrow = NARROW.get((layer, to))
                if narrow is None or (len(target) > 1 and target[1] in narrow):
                    continue
            if ("/".join(rel), to) in EXCEPTIONS:
                continue
            wrong.append(f"{'/'.join(rel)} imports {'.'.join(target)} ({layer} -> {to})")
    assert not wrong, "\n".join(wrong)


def test_core_imports_nothing_above_it() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        for target in _imports(path):
            assert _layer_of(target) == "core", f"{path.name} imports {'.'.join(target)}"


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
