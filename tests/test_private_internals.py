"""A dependency's private names are used only in its adapter (a module named
``*_internals.py``), where a test names the path the installed release takes: so an upgrade
that moves one fails that test by name, and a new private use cannot slip in elsewhere.

Seen here: ``module._name`` on an imported third-party module, and ``getattr``/``hasattr``
with a private name on anything but labloom's own attributes (``_labloom_*``)."""

from __future__ import annotations

import ast
from pathlib import Path

import labloom

ROOT = Path(labloom.__file__).parent
# Documented names despite their underscore: os._exit, namedtuple's API.
PUBLIC = {"_exit", "_fields", "_replace", "_asdict", "_make"}


def _third_party_modules(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if not a.name.startswith("labloom")}
    return names


def _private(name: str) -> bool:
    return (name.startswith("_") and not name.startswith("__")
            and not name.startswith("_labloom") and name not in PUBLIC)


def test_private_names_of_dependencies_are_used_only_in_their_adapters() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name.endswith("_internals.py") or "labextension" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = _third_party_modules(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if (isinstance(node, ast.Attribute) and _private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                found.append(f"{where}: {node.value.id}.{node.attr}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1
                  and isinstance(node.args[1], ast.Constant)
                  and isinstance(node.args[1].value, str) and _private(node.args[1].value)
                  and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self")):
                found.append(f"{where}: {node.func.id}(..., {node.args[1].value!r})")
    assert not found, "move these into the dependency's *_internals.py adapter:\n" + \
        "\n".join(found)
