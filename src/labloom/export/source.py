"""Small facts about Python source that the exporter needs: IPython-only lines, the names a
piece of code reads and binds, and which lines sit inside multi-line strings."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator

# Lines IPython rewrites before Python sees them: `!cmd`, `%magic`, `x = !cmd`, `obj?`.
_IPYTHON_LINE = re.compile(
    r"""^\s*(?:[!%]
        | [A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*[!%]
        | \?
        | [\w.]+\?\??\s*$)""",
    re.VERBOSE,
)


# `%time STATEMENT`: the line magic that runs its statement once in the notebook's names.
_TIMED = re.compile(r"^\s*%time\s+(\S.*)$")


def parse_cell(source: str) -> tuple[ast.Module, str, list[tuple[int, str]]]:
    """Parse a cell's source, replacing IPython-only lines with ``pass`` (at their indentation,
    so blocks stay blocks and line numbers stay put). Returns the tree, the cleaned source and
    the replaced lines as (line, text). Raises ``SyntaxError`` for anything else."""
    try:
        return ast.parse(source), source, []
    except SyntaxError:
        pass
    lines = source.split("\n")
    replaced = []
    for i, text in enumerate(lines):
        indent = text[: len(text) - len(text.lstrip())]
        timed = _TIMED.match(text)
        if timed:
            # `%time best = train(grid)` runs its statement once, as written, binding its
            # names: left out, a flow body's `best` was undefined in the module.
            lines[i] = indent + timed.group(1)
        elif _IPYTHON_LINE.match(text):
            replaced.append((i + 1, text.strip()))
            lines[i] = indent + "pass"
    cleaned = "\n".join(lines)
    return ast.parse(cleaned), cleaned, replaced


def ipython_reason(text: str) -> str:
    """Why an IPython-only line is left out, in a few words."""
    if text.startswith("!") or re.match(r"[\w.,\s]+=\s*!", text):
        return f"shell command `{short(text)}`"
    if text.startswith("?") or text.endswith("?"):
        return f"help request `{short(text)}`"
    return f"line magic `{short(text)}`"


def simple_targets(stmt: ast.stmt) -> frozenset[str]:
    """The names a plain assignment binds (`a = ...`, `a, b = ...`), else nothing: assigning
    into an attribute or an item is a side effect on something else."""
    if isinstance(stmt, ast.Assign):
        targets: list[ast.expr] = list(stmt.targets)
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) and stmt.value is not None:
        targets = [stmt.target]
    else:
        return frozenset()
    names: set[str] = set()
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                return frozenset()
            if isinstance(node, ast.Name):
                names.add(node.id)
    return frozenset(names)


def call_name(call: ast.Call) -> str:
    try:
        return ast.unparse(call.func)
    except Exception:  # pragma: no cover - unparse handles every expression
        return ""


def short(text: str, width: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= width else text[: width - 3] + "..."


def string_continuations(source: str) -> frozenset[int]:
    raw: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.start[0] != tok.end[0] and tok.type != tokenize.NL:
                raw.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the source parsed
        pass
    return frozenset(raw)


_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def assigned_names(statements: Iterable[ast.stmt]) -> list[str]:
    """Names these statements bind at their own level, in order (not inside functions, classes,
    comprehensions; ``global`` names excluded): what a ``%%flow`` cell leaves in the notebook,
    and what its exported flow returns. The kernel and the exporter both ask this function."""
    statements = list(statements)
    found: dict[str, None] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = None
            for decorator in node.decorator_list:
                visit(decorator)
            return
        if isinstance(node, _SCOPES):
            # A walrus inside a comprehension binds in the enclosing scope.
            for sub in ast.walk(node):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    found[sub.target.id] = None
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found[node.id] = None
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    found[(alias.asname or alias.name).split(".")[0]] = None
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found[node.name] = None
        for child in ast.iter_child_nodes(node):
            visit(child)

    declared: set[str] = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                declared.update(node.names)
    for statement in statements:
        visit(statement)
    return [name for name in found if name not in declared and not name.startswith("__labloom")]


def free_names(statements: Iterable[ast.stmt]) -> set[str]:
    """Names these statements read that they do not bind themselves (parameters, assignments,
    imports and definitions anywhere inside them): roughly, the globals they need. Good enough
    to decide which notebook constants a module must keep."""
    loads: set[str] = set()
    bound: set[str] = set()
    declared_global: set[str] = set()
    for stmt in statements:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                (loads if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                declared_global.update(node.names)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif node is not stmt and isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                bound.add(node.name)
    return (loads - bound) | (declared_global & loads)


# IPython expands `{expression}` and `$name` in a magic's line before the magic sees it
# (`%%flow sweep --executor {EXECUTOR}`); `{{` and `}}` stand for braces.
_EXPANSION = re.compile(r"\{\{|\}\}|\{([^{}]+)\}|\$([A-Za-z_]\w*)")


def expansion_source(text: str) -> str | None:
    """The Python expression an option value with IPython expansions stands for, or None when
    it has none: ``{EXECUTOR}`` is ``EXECUTOR``, ``tcp://{HOST}:8786`` an f-string.

        >>> expansion_source("tcp://{HOST}:8786")
        "f'tcp://{HOST}:8786'"
    """
    matches = [m for m in _EXPANSION.finditer(text) if m.group(1) or m.group(2)]
    if not matches:
        return None
    whole = matches[0]
    if len(matches) == 1 and whole.start() == 0 and whole.end() == len(text):
        return (whole.group(1) or whole.group(2)).strip()

    def as_field(m: re.Match[str]) -> str:
        if m.group(2):
            return "{" + m.group(2) + "}"
        return m.group(0)

    body = _EXPANSION.sub(as_field, text)
    return "f" + repr(body)


def expression_names(source: str) -> set[str]:
    """The names an expression reads."""
    return free_names(ast.parse(source, mode="exec").body)


def changed_in_place(stmt: ast.stmt) -> frozenset[str]:
    """Names whose object ``stmt`` changes in place: ``x[k] = v``, ``x.a = v``, ``del x[k]``,
    a method called as a statement (``x.append(v)``), also inside loops and conditions."""
    names: set[str] = set()
    for node in _statements(stmt):
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            targets = [node.value.func]
        else:
            continue
        for target in targets:
            base = target
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if base is not target and isinstance(base, ast.Name):
                names.add(base.id)
    return frozenset(names)


def _statements(stmt: ast.stmt) -> Iterator[ast.stmt]:
    """``stmt`` and the statements of its blocks, not those of functions or classes."""
    yield stmt
    blocks = [getattr(stmt, name, []) for name in ("body", "orelse", "finalbody")]
    blocks += [handler.body for handler in getattr(stmt, "handlers", [])]
    for block in blocks:
        for child in block:
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _statements(child)
