"""Where a flow's code lives, recorded with each run so ``labloom retry`` in another process
can load it again: the defining file and the function's name. Code typed in a notebook cell
has no such file; the record says so, and loading it (``export/run_targets.py``, above the store:
the store never imports a user's code) fails with a message saying what to do.
"""

from __future__ import annotations

import inspect
import os
from typing import Any


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
