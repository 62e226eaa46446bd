"""An interrupt that comes once a cell's code has ended does nothing, as one to an idle kernel
does, instead of losing the cell's reply.

ipykernel keeps Python's default SIGINT handler (KeyboardInterrupt) for its whole execute
request (``Kernel.pre_handler_hook``), also after the cell's code ended, while it flushes the
output (waiting for its IOPub thread) and sends the reply. An interrupt meant for the cell that
lands there is caught by its dispatcher ("KeyboardInterrupt caught in kernel.") and the
``execute_reply`` is never sent: the cell stays busy for ever and every later cell waits behind
it (ipykernel 7.4: an interrupted Dask %%flow cell under load, 2 of 25 runs in session 52, in
``sys.stdout.flush()`` of ``execute_request``, caught with a traceback in session 53). After
the cell (IPython's ``post_run_cell``) SIGINT is ignored, as ipykernel ignores it between
requests, until ipykernel puts its own handler back as the request ends
(``post_handler_hook``); the next request sets Python's again.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_depth = [0]  # cells running: a cell may run another (``get_ipython().run_cell``)


def ignore_late_interrupts(ipython: Any) -> None:
    """For a kernel's shell (in a terminal IPython no kernel puts the handler back)."""
    if getattr(ipython, "kernel", None) is None:
        return
    if _cell_ended not in ipython.events.callbacks["post_run_cell"]:  # %reload_ext: once
        ipython.events.register("pre_run_cell", _cell_began)
        ipython.events.register("post_run_cell", _cell_ended)


def _cell_began(info: Any) -> None:
    _depth[0] += 1


def _cell_ended(result: Any) -> None:
    if _depth[0] == 0:
        return  # one whose code never began (a syntax error): nothing to go by
    _depth[0] -= 1
    # Only the outermost cell's request ends next, and only the main thread gets a signal's
    # handler (a subshell's cell runs in its own thread).
    if _depth[0] == 0 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
