"""The annotation each exported flow parameter gets: the notebook's own where it has one
(``tables: list[str] = ["Orders"]``), else the type of the literal default (``list``).

Why: ``labloom run``, the schedules ``labloom serve`` starts and the Flows panel's "Run with..."
check ``--param`` text against a flow's annotations (``export/params.py``). A parameter without
one took any text, so ``-p tables=Orders`` for a list reached the flow body as a string and
failed there, after a cluster had started; typed, it is refused at once, naming the form.

    >>> default_type("['Orders']")
    'list'
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable

from .notebook_cells import Assignment
from .source import expression_names

# A literal's type as an annotation export/params.py checks (bytes and complex: no JSON form).
_DEFAULT_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list",
                  dict: "dict", tuple: "tuple", set: "set", frozenset: "frozenset"}


def default_type(literal: str) -> str | None:
    """The annotation a parameter whose default is ``literal`` (source text) gets; None for
    ``None`` and types a JSON value cannot become."""
    return _DEFAULT_TYPES.get(type(ast.literal_eval(literal)))


def notebook_annotation(name: str, before: Iterable[Assignment]) -> ast.expr | None:
    """The last annotation the notebook gave ``name`` among the assignments ``before``."""
    found = [a.annotation for a in before if a.name == name and a.annotation is not None]
    return found[-1] if found else None


def annotation_names(params: Iterable[str], cell: int, assignments: list[Assignment]) -> set[str]:
    """The names the notebook's annotations of a flow's parameters read (imports to keep)."""
    before = [a for a in assignments if a.cell < cell]
    names: set[str] = set()
    for name in params:
        annotation = notebook_annotation(name, before)
        if annotation is not None:
            names |= expression_names(ast.unparse(annotation))
    return names


def parameter_type(
    name: str, before: list[Assignment], literal: str | None, defined: set[str]
) -> str | None:
    """The annotation to write for parameter ``name``: the notebook's, if the module defines
    every name it reads (else it would fail the module's import), else the default's type."""
    annotation = notebook_annotation(name, before)
    if annotation is not None:
        text = ast.unparse(annotation)
        if expression_names(text) <= defined | set(dir(builtins)):
            return text
    return default_type(literal) if literal is not None else None
