"""A ``%%flow`` cell as a ``Flow``: the body becomes a function, the names it assigns its value.

The cell is compiled under the filename IPython gave the cell itself, one line down (the first
line of the cell is the ``%%flow`` line), so a traceback shows the cell and the line as the user
sees them.
"""

from __future__ import annotations

import ast
import hashlib
import os
import weakref
from typing import Any

from ..core.flows import Flow
from ..core.futures import MappedFuture, TaskFuture, allow_failure, replace_futures
from ..export.source import assigned_names

# The unresolved value of each run's assigned names, for publishing what resolved after a failure.
_assigned: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _record(run_locals: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    from ..core.flow_run import active_run

    values = {name: run_locals[name] for name in names if name in run_locals}
    run = active_run()
    if run is not None:
        _assigned[run] = values
    return values


def _function(name: str, args: ast.arguments, body: list[ast.stmt]) -> ast.FunctionDef:
    fields: dict[str, Any] = {"decorator_list": [], "returns": None}
    if "type_params" in ast.FunctionDef._fields:  # Python 3.12+
        fields["type_params"] = []
    return ast.FunctionDef(name=name, args=args, body=body, **fields)


def cell_flow(
    name: str,
    cell: str,
    params: dict[str, Any],
    user_ns: dict[str, Any],
    compiler: Any,
    filename: str,
    executor: Any = None,
    **options: Any,
) -> tuple[Flow[Any, dict[str, Any]], list[str]]:
    """Compile ``cell`` as a flow named ``name``; returns it and the names it assigns.
    ``options``: the %%flow line's run options (``FlowOptions.flow_kwargs``).

    Calling the flow returns ``{name: value}`` for every name the cell assigned.
    """
    tree = ast.parse("\n" + cell, filename=filename, mode="exec")
    names = assigned_names(tree.body)
    record = "__labloom_record__"
    returned = ast.Return(
        value=ast.Call(
            func=ast.Name(record, ast.Load()),
            args=[
                ast.Call(func=ast.Name("locals", ast.Load()), args=[], keywords=[]),
                ast.Tuple([ast.Constant(n) for n in names], ast.Load()),
            ],
            keywords=[],
        )
    )
    inner = _function(
        name,
        ast.arguments(
            posonlyargs=[],
            args=[ast.arg(p) for p in params],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        [*tree.body, returned],
    )
    # The outer function exists only so the helper is a closure, not a notebook global.
    outer = _function(
        "__labloom_make__",
        ast.arguments(
            posonlyargs=[], args=[ast.arg(record)], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        [inner, ast.Return(ast.Name(name, ast.Load()))],
    )
    module = ast.Module(body=[outer], type_ignores=[])
    ast.fix_missing_locations(module)
    # The generated nodes take line 1 (the %%flow line); the cell's own keep theirs.
    code = compiler(module, filename, "exec")
    scope: dict[str, Any] = {}
    exec(code, user_ns, scope)
    fn = scope["__labloom_make__"](_record)
    fn.__defaults__ = tuple(params.values())
    fn.__qualname__ = name
    fn.__module__ = "__main__"
    fn.__doc__ = f"The %%flow cell {name}."
    flow: Flow[Any, dict[str, Any]] = Flow(fn, name=name, executor=executor, **options)
    # inspect.getsource cannot see a cell body; hash the cell instead.
    flow.source_hash = hashlib.sha256(cell.encode()).hexdigest()[:16]
    flow.notebook = kernel_notebook()
    return flow, names


def kernel_notebook() -> str | None:
    """The notebook file this kernel runs, as Jupyter's session manager tells the kernel
    (``JPY_SESSION_NAME``); None outside Jupyter or for a console."""
    path = os.environ.get("JPY_SESSION_NAME", "")
    return path if path.endswith(".ipynb") and os.path.isfile(path) else None


def resolved_names(run: Any) -> tuple[dict[str, Any], list[str]]:
    """After a run that did not complete: the names whose values resolved, and the others."""
    values = _assigned.pop(run, {})
    done: dict[str, Any] = {}
    missing: list[str] = []

    def value_of(item: Any) -> Any:
        if isinstance(item, allow_failure):
            item = item.future
        if isinstance(item, (TaskFuture, MappedFuture)):
            return item.result(timeout=0)
        return item

    for name, value in values.items():
        try:
            done[name] = replace_futures(value, value_of)
        except Exception:
            missing.append(name)
    return done, missing
