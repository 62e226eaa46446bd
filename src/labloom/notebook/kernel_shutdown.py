"""What a process does for labloom at exit, done as its Jupyter kernel is asked to shut down.

ipykernel answers a shutdown request (JupyterLab's "Shut Down Kernel", a restart, a closed
notebook) by terminating the kernel's child processes, SIGTERM then SIGKILL, and only then
stops, and Python's exit handlers run. The embedded Dask cluster's worker processes are such
children, but its nannies and scheduler live in the kernel: they saw the workers die, started
new ones, and ran there again every finished task whose result a client still held (a run kept
in the notebook), a task that writes a file or sends a mail included.

So labloom's exit work comes first, from the kernel's ``do_shutdown`` (ipykernel calls it
before it stops the children; kernels override it for this): unfinished runs end (as at exit,
``core/at_exit``), then the callbacks given here close the clusters, clients first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("labloom")

# The kernel whose do_shutdown is wrapped, and what runs before it (in the order given).
_callbacks: list[Callable[[], None]] = []
_wrapped: list[Any] = []


def call_before_shutdown(kernel: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` when ``kernel`` is asked to shut down, before ipykernel stops the
    kernel's child processes (after any unfinished run has ended)."""
    if callback not in _callbacks:
        _callbacks.append(callback)
    if any(wrapped is kernel for wrapped in _wrapped):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        _before_shutdown()
        return original(restart)

    kernel.do_shutdown = do_shutdown  # on this kernel object only; ipykernel calls it by name
    _wrapped.append(kernel)


def _before_shutdown() -> None:
    from ..core.at_exit import end_unfinished_runs
    from ..core.process_internals import stop_resource_tracker

    # Runs first, as at exit: a run still going is cancelled (its calls on the cluster with
    # it) and recorded as ended, before the cluster it runs on closes.
    steps = [end_unfinished_runs, *_callbacks]
    _callbacks.clear()  # once: the exit handlers find them closed
    for step in steps:
        try:
            step()
        except Exception:  # never in the way of the shutdown: the exit handlers try again
            log.exception("[labloom] closing before the kernel shuts down failed")
    # Once the clusters are closed: the tracker would ignore ipykernel's SIGTERMs for 29 s.
    try:
        stop_resource_tracker()
    except Exception:
        log.exception("[labloom] stopping multiprocessing's resource tracker failed")
