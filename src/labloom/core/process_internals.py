"""The private internal of ``multiprocessing`` labloom uses, with its fallback. ``in_use()``
names the path this Python takes; ``tests/test_cli_interrupt_dask.py`` checks it.

- ``release_before_hard_exit``: ``multiprocessing.util._run_finalizers(0)``, the first step of
  multiprocessing's own exit handler, which ``os._exit`` skips. ``labloom run`` ends that way
  on Ctrl-C (a task thread sleeping in user code would keep the interpreter alive), and the
  semaphores of the embedded Dask cluster's worker processes were then left to multiprocessing's
  resource tracker, which said so after the shell's prompt was back: "UserWarning:
  resource_tracker: There appear to be 12 leaked semaphore objects to clean up at shutdown".
  Run here, they are unlinked and let go of, as at a normal exit. Fallback: nothing (the
  tracker still unlinks them, saying so).
- ``stop_resource_tracker``: ``multiprocessing.resource_tracker._resource_tracker._stop()``,
  which a normal exit does in effect (the tracker's pipe closes, it cleans up and exits). A
  Jupyter kernel's shutdown comes first: ipykernel signals each child of the kernel, SIGTERM
  then SIGKILL, on a schedule of its own (14 s each) until none is left, and the tracker
  ignores SIGTERM (then lingers as a zombie): a kernel that had run a Dask cluster took 29 s
  to shut down. Fallback: nothing (ipykernel's signals end it, in those 29 s).
"""

from __future__ import annotations

import sys
from typing import Any

from .abandoned_children import end_abandoned

RUN_FINALIZERS = "multiprocessing.util._run_finalizers"
STOP_TRACKER = "multiprocessing.resource_tracker._resource_tracker._stop"
NOTHING = "nothing"


def in_use() -> str:
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        import multiprocessing.util as util
    return RUN_FINALIZERS if callable(getattr(util, "_run_finalizers", None)) else NOTHING


def release_before_hard_exit() -> str:
    """What multiprocessing holds for this process (its semaphores, its queues' threads),
    let go of as at a normal exit, before ``os._exit``; returns the path taken. Nothing is
    imported if multiprocessing never was."""
    # A cluster's workers still starting for a start an interrupt abandoned would each fail,
    # loudly, on a semaphore let go of here: ended first, and any forked meanwhile after.
    end_abandoned()
    util = sys.modules.get("multiprocessing.util")
    run_finalizers = getattr(util, "_run_finalizers", None)
    if run_finalizers is None:
        return NOTHING
    run_finalizers(0)  # those at or above 0: a semaphore's unlink is 0
    end_abandoned()
    return RUN_FINALIZERS


def _tracker_stop() -> Any:
    import multiprocessing.resource_tracker as resource_tracker

    stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)
    return stop if callable(stop) else None


def tracker_stop_in_use() -> str:
    """The path ``stop_resource_tracker`` takes on this Python (asks nothing to stop)."""
    return NOTHING if _tracker_stop() is None else STOP_TRACKER


def stop_resource_tracker() -> str:
    """multiprocessing's resource tracker process, if this process started one, ended as at a
    normal exit and waited for; returns the path taken. Only as this process ends (a kernel
    shutting down): a semaphore made after would start another. Nothing is imported if
    multiprocessing's tracker never was."""
    if "multiprocessing.resource_tracker" not in sys.modules:
        return NOTHING
    stop = _tracker_stop()
    if stop is None:
        return NOTHING
    stop()  # nothing if it is not running
    return STOP_TRACKER
