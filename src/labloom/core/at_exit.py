"""Runs still going when the process exits end in a recorded state.

A script that starts ``flow.run(..., background=True)`` and returns, or a kernel that shuts
down mid-run, would otherwise leave the store with a run forever "Running" and lose the
events not yet written. At exit every unfinished run of this process is cancelled with
``EXIT_REASON`` and finished, so the store commits its final state and every task run that
finished.

The hook runs among ``threading``'s exit callbacks (``threading_internals.py``): before the
thread pools join their workers (which would otherwise run every queued task first) and before
distributed's ``atexit`` handler closes the cluster the cancel must reach.
"""

from __future__ import annotations

import threading
from typing import Any

from . import gc_policy
from .threading_internals import register_at_exit

EXIT_REASON = "the process exited while the run was running"
# How long a run's own thread gets to finish it before the hook finishes it itself.
_DRIVER_GRACE = 2.0
_FINAL_COMMIT = 30.0

_unfinished: dict[str, Any] = {}  # run id -> FlowRun
_lock = threading.Lock()
_registered = False


def track(run: Any) -> None:
    """``run`` has started (or restarted for a retry): end it if the process exits first."""
    global _registered
    with _lock:
        if run.id not in _unfinished:
            gc_policy.run_started()  # the collector's settings while runs go
        _unfinished[run.id] = run
        if not _registered:
            _registered = True
            register_at_exit(end_unfinished_runs)  # see threading_internals: why not atexit


def untrack(run: Any) -> None:
    with _lock:
        if _unfinished.pop(run.id, None) is not None:
            gc_policy.run_ended()


def end_unfinished_runs() -> None:
    with _lock:
        runs = list(_unfinished.values())
    for run in runs:
        run.cancel(EXIT_REASON)
    for run in runs:
        if not run.wait_finished(_DRIVER_GRACE):
            run.finish_now()  # its thread is busy in the flow body: finish from here
            run.wait_finished(_FINAL_COMMIT)


# Seconds an interrupted run gets to end by itself before it is ended from the caller.
_SETTLE = 3.0


def end_interrupted(run: Any, reason: str = "interrupted") -> None:
    """Cancel the run whose caller was interrupted (Ctrl-C, a cell's Interrupt) and let it
    settle, so the store and the widget show its end. Its own thread may be inside a call that
    no interrupt reaches (the local executor runs calls there too): then end it from here, not
    when that call returns (``labloom run`` exited first, and left the run to be found
    Crashed)."""
    run.cancel(reason)
    try:
        run.wait(timeout=_SETTLE)
    finally:
        if not run.wait_finished(0):
            run.finish_now()
            run.wait_finished(_FINAL_COMMIT)
