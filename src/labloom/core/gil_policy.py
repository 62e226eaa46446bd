"""The GIL's switch interval while flow runs go in this process.

A run's store writer is one thread among the run's task threads, and a busy run goes at its
pace: the engine launches no more while the writer lags (``EventBus.pace``). The writer lets
go of the GIL in every SQLite statement and for its disk; to take it back while a task thread
runs Python it waits until that thread lets go, which a CPU-bound thread does only when the
switch interval (5 ms by default) has passed. In a run of 100,000 no-op children (issue 19's
benchmark) the writer waited so 250 to 400 times, 2.2 to 4.9 s of a 5 to 14 s run on a
shared machine (``benchmarks/gil_timeline.py``); at 1 ms, 1.7 to 3.3 s.

While at least one run goes (``run_started`` .. ``run_ended``, called by ``at_exit`` as it
tracks the runs going), the switch interval is at most ``RUN_INTERVAL``; when the last run
ends it goes back to what it was, unless something changed it meanwhile. A process that set a
shorter one keeps it.
"""

from __future__ import annotations

import sys
import threading

RUN_INTERVAL = 0.001  # seconds

_lock = threading.Lock()
_going = 0
_saved: float | None = None  # the interval before the first run
_applied: float | None = None  # the interval set for the runs


def run_started() -> None:
    """A run began (or began again, a retry)."""
    global _going, _saved, _applied
    with _lock:
        _going += 1
        if _going > 1:
            return
        _saved = sys.getswitchinterval()
        if _saved > RUN_INTERVAL:
            sys.setswitchinterval(RUN_INTERVAL)
        _applied = sys.getswitchinterval()


def run_ended() -> None:
    """A run ended (whatever its state); unbalanced calls are ignored."""
    global _going
    with _lock:
        if _going == 0:
            return
        _going -= 1
        if _going == 0 and _saved is not None and sys.getswitchinterval() == _applied:
            sys.setswitchinterval(_saved)


def runs_going() -> int:
    return _going
