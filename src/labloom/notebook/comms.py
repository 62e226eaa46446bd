"""Keep a widget's buttons working while a cell runs.

A kernel handles shell messages one at a time on its main thread, so while a ``%%flow`` cell
waits for its run, a click on Cancel would queue behind it. ipykernel 7 runs *subshells*: each
has its own thread and event loop, and a comm may say which subshell receives its messages
(``_reply_subshell_for``). labloom starts one subshell per kernel and routes its widgets'
messages there; execute requests stay on the main shell, so "Run all" keeps its order.

Where the kernel has no subshells (ipykernel 6, a plain terminal IPython) nothing changes: the
buttons act once the cell returns, and interrupting the kernel still cancels the run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .settings import current_shell

log = logging.getLogger("labloom")

_lock = threading.Lock()
_subshells: dict[int, str | None] = {}  # id(kernel) -> subshell id (None: unavailable)


def _kernel() -> Any:
    return getattr(current_shell(), "kernel", None)


def widget_subshell(kernel: Any, timeout: float = 5.0) -> str | None:
    """This kernel's labloom subshell, started on first use; None where there are none."""
    with _lock:
        if id(kernel) in _subshells:
            return _subshells[id(kernel)]
        subshell = _start_subshell(kernel, timeout)
        _subshells[id(kernel)] = subshell
        return subshell


def _start_subshell(kernel: Any, timeout: float) -> str | None:
    if not getattr(kernel, "_supports_kernel_subshells", False):
        return None
    try:
        manager = kernel.shell_channel_thread.manager
        loop = manager._shell_channel_io_loop
    except AttributeError:
        return None
    made: list[str] = []
    done = threading.Event()

    def create() -> None:
        # The manager creates subshells only on the shell channel thread.
        try:
            made.append(manager._create_subshell())
        except Exception:
            log.exception("[labloom] could not start a subshell for widget messages")
        finally:
            done.set()

    loop.add_callback(create)
    if not done.wait(timeout) or not made:
        return None
    return made[0]


def route_to_subshell(widget: Any) -> bool:
    """Send the front end's messages for ``widget`` to the labloom subshell.

    Returns False (and changes nothing) where the kernel cannot do that.
    """
    kernel = _kernel()
    comm = getattr(widget, "comm", None)
    if kernel is None or comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    subshell = widget_subshell(kernel)
    if subshell is None:
        return False

    def route(_data: Any, _default: Any) -> str:
        return subshell

    comm._reply_subshell_for = route
    return True
