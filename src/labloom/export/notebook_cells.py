"""Reading a notebook's code cells into the pieces an exported module is made of.

Each code cell is sorted, statement by statement, into what a module can keep (imports,
definitions, assignments), ``%%flow`` cells, and what is left out (displays, plots, shell lines,
other magics, top-level side effects), each left-out piece with a one-line reason. Line numbers
are the cell's own (1-based, the magic line included), so errors can point back at the cell.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ExportError, MagicArgsError
from .magic_grammar import (
    FlowOptions,
    TasksOptions,
    parse_flow_line,
    parse_tasks_line,
)
from .source import (
    assigned_names,
    call_name,
    changed_in_place,
    expansion_source,
    expression_names,
    free_names,
    ipython_reason,
    parse_cell,
    short,
    simple_targets,
    string_continuations,
)

SKIP_TAG = "labloom-skip"
PARAMETERS_TAG = "parameters"  # papermill's

_DISPLAY_CALLS = {"display", "print", "pprint"}
_PLOT_NAMES = {"plt", "sns"}
_PLOT_MODULES = {"matplotlib", "seaborn", "plotly", "bokeh", "altair"}


@dataclass(frozen=True)
class LeftOut:
    """A piece of the notebook that the module does not contain, and why."""

    cell: int
    reason: str
    line: int | None = None  # in the cell, when only part of it is left out
    # names the left-out code reads: an import only it needs is left out too
    uses: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # names whose object it changes in place (config["k"] = 3, tables.append(t))
    changes: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __str__(self) -> str:
        where = f"cell {self.cell}" + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.reason}"


Lines = list[tuple[int, str]]  # (line in the cell, text)


@dataclass
class Kept:
    """A top-level statement a module can hold: an import, a definition or an assignment."""

    cell: int
    kind: str  # "future" | "import" | "def" | "assign"
    lines: Lines
    defines: frozenset[str]
    uses: frozenset[str]
    decorator: str | None = None  # the task decorator a %%tasks cell adds
    module: str = ""  # for imports: the module imported


@dataclass
class Assignment:
    """A top-level binding of a name in the notebook: where flow parameters get defaults."""

    cell: int
    name: str
    value: ast.expr | None  # None: bound without a single value expression
    source: str
    in_parameters_cell: bool = False
    annotation: ast.expr | None = None  # `tables: list[str] = [...]`: the flow parameter's type


@dataclass
class FlowCell:
    cell: int
    options: FlowOptions
    body: Lines
    raw_lines: frozenset[int]  # lines inside a multi-line string: indenting would change them
    assigned: list[str]
    free: frozenset[str]


@dataclass
class NotebookPieces:
    kept: list[Kept] = field(default_factory=list)
    flows: list[FlowCell] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)


# Cell magics that run their body once, as written: %%time measures it, %%capture hides its
# output. Their cells' definitions belong in the module (a setup cell is often timed).
RUN_AS_WRITTEN = frozenset({"time", "capture"})


def read_cells(cells: Sequence[Any]) -> NotebookPieces:
    """Sort the code cells of a notebook (``nbformat`` cell objects) into pieces."""
    pieces = NotebookPieces()
    for number, cell in enumerate(cells, start=1):
        source: str = cell.get("source", "")
        if cell.get("cell_type") != "code" or not source.strip():
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if SKIP_TAG in tags:
            pieces.left_out.append(LeftOut(number, f"tagged {SKIP_TAG}", uses=_reads(source)))
            continue
        first, _, rest = source.partition("\n")
        if first.startswith("%%"):
            magic, _, args = first[2:].partition(" ")
            # The magic line becomes an empty line: the body keeps the cell's line numbers.
            body = "\n" + rest
            try:
                if magic == "tasks":
                    _read_code(pieces, number, body, tasks=parse_tasks_line(args))
                elif magic == "flow":
                    _read_flow(pieces, number, body, parse_flow_line(args))
                elif magic in RUN_AS_WRITTEN:
                    _read_code(pieces, number, body, parameters=PARAMETERS_TAG in tags)
                else:
                    reads = _reads(body)
                    pieces.left_out.append(LeftOut(number, f"cell magic %%{magic}", uses=reads))
            except MagicArgsError as e:
                raise ExportError(f"cell {number}: {e}", cell=number, line=1) from None
            continue
        _read_code(pieces, number, source, parameters=PARAMETERS_TAG in tags)
    return pieces


def _reads(source: str) -> frozenset[str]:
    """The names a cell left out whole reads, as far as it parses."""
    try:
        tree, _, _ = parse_cell(source)
    except SyntaxError:
        return frozenset()
    return frozenset(free_names(tree.body))


def _parse(number: int, source: str) -> tuple[ast.Module, str, list[tuple[int, str]]]:
    try:
        return parse_cell(source)
    except SyntaxError as e:
        line = e.lineno or 1
        text = source.split("\n")[line - 1].strip() if line <= source.count("\n") + 1 else ""
        raise ExportError(
            f"cell {number}, line {line}: not valid Python ({e.msg}): {text!r}; "
            f"fix the cell or tag it {SKIP_TAG}",
            cell=number,
            line=line,
        ) from None


def _report_replaced(
    pieces: NotebookPieces, number: int, source: str, replaced: list[tuple[int, str]]
) -> set[int]:
    """List IPython-only lines as left out; returns the lines at top level."""
    top = set()
    raw = source.split("\n")
    for line, text in replaced:
        nested = raw[line - 1][:1].isspace()
        note = " (replaced by pass)" if nested else ""
        pieces.left_out.append(LeftOut(number, ipython_reason(text) + note, line))
        if not nested:
            top.add(line)
    return top


def _read_code(
    pieces: NotebookPieces,
    number: int,
    source: str,
    *,
    tasks: TasksOptions | None = None,
    parameters: bool = False,
) -> None:
    tree, cleaned, replaced = _parse(number, source)
    top_replaced = _report_replaced(pieces, number, source, replaced)
    lines = cleaned.split("\n")
    body = tree.body
    plot = bool(_PLOT_NAMES & free_names(body)) or any(
        isinstance(stmt, (ast.Import, ast.ImportFrom)) and _imports_plotting(stmt) for stmt in body
    )
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Pass) and stmt.lineno in top_replaced:
            continue
        shares_line = (i > 0 and body[i - 1].end_lineno == stmt.lineno) or (
            i + 1 < len(body) and body[i + 1].lineno == stmt.end_lineno
        )
        after = (body[i - 1].end_lineno or 0) if i else 0
        text = _statement_lines(stmt, lines, shares_line, after)
        kept = _keep(number, stmt, text, tasks)
        if kept is None:
            reason = _left_out_reason(stmt, text, plot=plot)
            uses = frozenset(free_names([stmt]))
            changes = changed_in_place(stmt)
            pieces.left_out.append(LeftOut(number, reason, stmt.lineno, uses, changes))
            continue
        pieces.kept.append(kept)
        if kept.kind == "assign":
            pieces.assignments.extend(_assignments(number, stmt, cleaned, parameters))


def _statement_lines(stmt: ast.stmt, lines: list[str], shares_line: bool, after: int) -> Lines:
    """The statement's lines with the comment lines right above it (down from line ``after``,
    where the statement before it ends)."""
    if shares_line:  # `a = 1; print(a)`: keep only this statement
        return [(stmt.lineno, text) for text in ast.unparse(stmt).split("\n")]
    decorators: list[ast.expr] = getattr(stmt, "decorator_list", [])
    start = min([stmt.lineno] + [d.lineno for d in decorators])
    while start - 1 > after and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    end = stmt.end_lineno or stmt.lineno
    return [(n, lines[n - 1]) for n in range(start, end + 1)]


def _keep(number: int, stmt: ast.stmt, text: Lines, tasks: TasksOptions | None) -> Kept | None:
    uses = frozenset(free_names([stmt]))
    if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
        return Kept(number, "future", text, frozenset(), uses, module="__future__")
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        names = frozenset((a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*")
        module = stmt.names[0].name
        if isinstance(stmt, ast.ImportFrom):
            module = stmt.module or ""
        return Kept(number, "import", text, names, uses, module=module)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        decorator = None
        if tasks is not None and not isinstance(stmt, ast.ClassDef) and not _is_task(stmt):
            decorator = _task_decorator(tasks)
            uses |= {name.split(".")[0] for name in tasks.retry_on}  # imports the module needs
        return Kept(number, "def", text, frozenset([stmt.name]), uses, decorator)
    targets = simple_targets(stmt)
    if targets:
        if isinstance(stmt, ast.AugAssign):  # `X += 1` needs the X before it
            uses = uses | targets
        return Kept(number, "assign", text, frozenset(targets), uses)
    return None


def _is_task(stmt: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in stmt.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Name) and target.id == "task":
            return True
        if isinstance(target, ast.Attribute) and target.attr == "task":
            return True
    return False


def _task_decorator(options: TasksOptions) -> str:
    words = [f"{k}={_source(v)}" for k, v in options.task_kwargs().items()]
    if options.retry_on:
        names = options.retry_on
        words.append("retry_on=" + (names[0] if len(names) == 1 else f"({', '.join(names)})"))
    return "@task(" + ", ".join(words) + ")" if words else "@task"


def _source(value: object) -> str:
    """Python source for an option value, strings in double quotes as a formatter writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_source(v) for v in value) + "]"
    return repr(value)


def _assignments(number: int, stmt: ast.stmt, source: str, parameters: bool) -> list[Assignment]:
    def one(name: str, value: ast.expr | None, annotation: ast.expr | None = None) -> Assignment:
        text = ast.get_source_segment(source, value or stmt) or ast.unparse(value or stmt)
        return Assignment(number, name, value, text, parameters, annotation)

    if isinstance(stmt, ast.Assign):
        found = []
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                found.append(one(target.id, stmt.value))
            elif (
                isinstance(target, (ast.Tuple, ast.List))
                and isinstance(stmt.value, (ast.Tuple, ast.List))
                and len(target.elts) == len(stmt.value.elts)
            ):
                for t, v in zip(target.elts, stmt.value.elts, strict=True):
                    names = simple_targets(ast.Assign(targets=[t], value=v))
                    found += [one(n, v if isinstance(t, ast.Name) else None) for n in names]
            else:
                found += [one(n, None) for n in simple_targets(stmt)]
        return found
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [one(stmt.target.id, stmt.value, stmt.annotation)]
    return [one(n, None) for n in simple_targets(stmt)]


def _imports_plotting(stmt: ast.Import | ast.ImportFrom) -> bool:
    modules = [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else []
    modules += [alias.name for alias in stmt.names]
    return any(m.split(".")[0] in _PLOT_MODULES for m in modules)


def _left_out_reason(stmt: ast.stmt, text: Lines, plot: bool = False) -> str:
    first = short(text[-1][1] if len(text) == 1 else ast.unparse(stmt).split("\n")[0])
    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Call):
            name = call_name(value)
            if name in _DISPLAY_CALLS:
                return f"`{first}` only shows output in the notebook"
            if name.startswith("plt.") or name.endswith((".plot", ".show", ".hist")):
                return f"`{first}` is a plot"
            if plot:  # `ax.set_title(...)` in a cell that draws with matplotlib
                return f"`{first}` is part of a plot"
            return f"`{first}` is a top-level call run for its side effect"
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return "a bare string"
        return f"`{first}` is a bare expression shown as output"
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return f"`{first}` assigns into an object: a top-level side effect"
    kind = type(stmt).__name__.lower()
    return f"top-level `{kind}` statement `{first}` would run on import"


def _read_flow(pieces: NotebookPieces, number: int, source: str, options: FlowOptions) -> None:
    tree, cleaned, replaced = _parse(number, source)
    dropped = _report_replaced(pieces, number, source, replaced)
    lines = cleaned.split("\n")
    body = tree.body
    statements = []
    for i, stmt in enumerate(body):
        end = stmt.end_lineno or stmt.lineno
        alone = (i == 0 or body[i - 1].end_lineno != stmt.lineno) and (
            i + 1 == len(body) or body[i + 1].lineno != end
        )
        if isinstance(stmt, ast.Pass) and stmt.lineno in dropped:
            continue
        if alone and _only_displays(stmt):
            text = lines[stmt.lineno - 1].strip()
            pieces.left_out.append(
                LeftOut(
                    number,
                    f"`{short(text)}` only shows output in the notebook (flow {options.name})",
                    stmt.lineno,
                )
            )
            dropped.update(range(stmt.lineno, end + 1))
            continue
        statements.append(stmt)
    kept = [(n, lines[n - 1]) for n in range(2, len(lines) + 1) if n not in dropped]
    while kept and not kept[-1][1].strip():
        kept.pop()
    assigned = assigned_names(statements)
    free = free_names(statements) - set(options.params)
    for value in (options.executor, options.address, options.cluster):
        expression = expansion_source(value or "")
        if expression is not None:  # `--executor {EXECUTOR}` reads a notebook name
            try:
                free |= expression_names(expression)
            except SyntaxError:
                raise ExportError(
                    f"cell {number}, line 1: {value!r} is not a valid IPython expansion",
                    cell=number,
                    line=1,
                ) from None
    raw = string_continuations(cleaned)
    pieces.flows.append(FlowCell(number, options, kept, raw, assigned, frozenset(free)))
    pieces.assignments.extend(
        Assignment(number, name, None, f"the result of flow {options.name}") for name in assigned
    )


def _only_displays(stmt: ast.stmt) -> bool:
    """A bare expression or `display(...)`: in a flow body it only shows output. Other calls
    stay: they may call tasks."""
    if not isinstance(stmt, ast.Expr):
        return False
    if isinstance(stmt.value, ast.Call):
        return call_name(stmt.value) == "display"
    return not isinstance(stmt.value, (ast.Await, ast.Yield, ast.YieldFrom))
