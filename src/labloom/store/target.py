"""Where a flow's code lives, recorded with each run so ``labloom retry`` in another process
can load it again: the defining file and the function's name. Code typed in a notebook cell
has no such file; the record says so, and loading it fails with a message saying what to do.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..core.errors import TargetError
from ..core.loading import import_file


def describe(flow: Any) -> dict[str, Any]:
    fn = getattr(flow, "fn", None)
    record: dict[str, Any] = {
        "flow": getattr(flow, "name", ""),
        "function": getattr(fn, "__name__", ""),
        "qualname": getattr(fn, "__qualname__", ""),
        "module": getattr(fn, "__module__", ""),
        "file": None,
    }
    try:
        path = inspect.getsourcefile(fn) if fn is not None else None
    except TypeError:
        path = None
    if path and os.path.isfile(path) and not _is_cell_file(path):
        record["file"] = os.path.abspath(path)
    elif path:
        record["note"] = f"defined in a notebook cell ({path})"
    else:
        record["note"] = "the source file is unknown"
    if "<locals>" in record["qualname"]:
        record["note"] = "defined inside a function, so no module attribute names it"
    notebook = getattr(flow, "notebook", None)
    if notebook:
        record["notebook"] = notebook  # a %%flow cell: loaded by exporting its notebook
    return record


def _is_cell_file(path: str) -> bool:
    # ipykernel writes each cell to a temporary file named after the cell's hash.
    return "ipykernel_" in path or path.startswith("<")


def load(record: dict[str, Any], run_id: str) -> Any:
    """The ``Flow`` a run was made from, loaded afresh from its file."""
    from ..core.flows import Flow

    path = record.get("file")
    name = record.get("flow") or record.get("function")
    if not path or record.get("note"):
        raise TargetError(
            f"run {run_id} of flow {name!r} cannot be retried from here: its code is not in a "
            f"file this process can load ({record.get('note') or 'no file recorded'}). Export "
            "the notebook (`labloom export NOTEBOOK`) and run the module, or call "
            "run.retry() in the kernel that ran it"
        )
    if not os.path.isfile(path):
        raise TargetError(
            f"run {run_id}: the flow's file {path} is gone; restore it, or run the flow afresh"
        )
    try:
        module = import_file(path, f"labloom_retry_{abs(hash(path))}")
    except Exception as exc:
        raise TargetError(
            f"run {run_id}: importing {path} raised {type(exc).__name__}: {exc}"
        ) from exc
    candidate = getattr(module, record.get("function") or "", None)
    if isinstance(candidate, Flow):
        return candidate
    for value in vars(module).values():
        if isinstance(value, Flow) and value.name == name:
            return value
    raise TargetError(
        f"run {run_id}: {path} no longer defines the flow {name!r} "
        f"(looked for a @flow named {record.get('function')!r})"
    )
