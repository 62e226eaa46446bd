"""Keep a widget's buttons working while a cell runs.

A kernel handles shell messages one at a time on its main thread, so while a ``%%flow`` cell
waits for its run, a click on Cancel would queue behind it. ipykernel 7 runs *subshells*: each
has its own thread and event loop, and a comm may say which subshell receives its messages.
labloom starts one subshell per kernel and routes its widgets' messages there; execute
requests stay on the main shell, so "Run all" keeps its order. The ipykernel internals this
takes live in ``ipykernel_internals.py``.

Where the kernel has no subshells (ipykernel 6, a plain terminal IPython) nothing changes: the
buttons act once the cell returns, and interrupting the kernel still cancels the run.
"""

from __future__ import annotations

import threading
from typing import Any

from .ipykernel_internals import can_route, route_comm, start_subshell
from .settings import current_shell

_lock = threading.Lock()
_subshells: dict[int, str | None] = {}  # id(kernel) -> subshell id (None: unavailable)


def _kernel() -> Any:
    return getattr(current_shell(), "kernel", None)


def widget_subshell(kernel: Any, timeout: float = 5.0) -> str | None:
    """This kernel's labloom subshell, started on first use; None where there are none."""
    with _lock:
        if id(kernel) in _subshells:
            return _subshells[id(kernel)]
        subshell = start_subshell(kernel, timeout)
        _subshells[id(kernel)] = subshell
        return subshell


def route_to_subshell(widget: Any) -> bool:
    """Send the front end's messages for ``widget`` to the labloom subshell.

    Returns False (and changes nothing) where the kernel cannot do that.
    """
    kernel = _kernel()
    comm = getattr(widget, "comm", None)
    if kernel is None or not can_route(comm):
        return False
    subshell = widget_subshell(kernel)
    if subshell is None:
        return False
    route_comm(comm, subshell)
    return True
