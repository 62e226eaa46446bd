"""The cyclic garbage collector while flow runs go in this process.

A run keeps a record per task run and makes short-lived objects per task run (events waiting
for the store, calls waiting for a thread). With CPython's defaults a young collection comes
every 700 new objects, what survives two of them is promoted to the oldest generation, and a
full collection walks every object the process holds each time that generation grew by a
quarter: a run's records were walked about five times over, most of those walks cache misses
on a big heap, so the time per task run grew with the run (issue 21).

While at least one run goes (``run_started`` .. ``run_ended``, called by ``at_exit`` as it
tracks the runs going):

- the young generation's threshold is at least ``RUN_THRESHOLD``, so what lives shorter than
  some tens of thousands of task runs (what a busy run holds in flight) dies young instead of
  being promoted and walked again;
- after each full collection, what survived it is frozen (``gc.freeze``): it is alive, and
  the next full collections walk only what came since instead of the whole run again.

When a run ends, everything frozen is unfrozen (``gc.unfreeze``) and the next full collection
sees it again: a cycle that became garbage while frozen waits at most until a run ends. When
the last run ends, the thresholds go back to what they were (unless something changed them
meanwhile). A process that froze objects itself (``gc.get_freeze_count()`` when its first run
starts) is left alone: unfreezing would undo that.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

# 10,000 until session 29: a run of 100,000 no-op children then made 50 young collections
# (0.23 s of CPU) logging nothing and 66 (0.52 s) logging 3 metrics per child, each walking
# what is in flight (reports waiting, events for the store); at 50,000 (until session 36), 3-4
# (0.01-0.02 s) and 8-11 (0.06-0.10 s): a busy run holds 45,000 to 90,000 young objects in
# flight (events waiting for the store most of them), so a young collection every 50,000 walked
# them over and over, the more often the more a run reports (logging calls: issue 19). Well
# above that, what is in flight dies before a collection sees it: 1-2 and 2 (0.02 s each).
RUN_THRESHOLD = 200_000

_lock = threading.Lock()
_going = 0
_saved: tuple[int, int, int] | None = None  # the thresholds before the first run
_applied: tuple[int, int, int] | None = None  # the thresholds set for the runs
_freezing = False


def run_started() -> None:
    """A run began (or began again, a retry)."""
    global _going, _saved, _applied, _freezing
    with _lock:
        _going += 1
        if _going > 1:
            return
        saved = gc.get_threshold()
        _saved = (saved[0], saved[1], saved[2])
        # Threshold 0 turns automatic collection off: the process's choice, kept.
        young = saved[0] if saved[0] == 0 else max(saved[0], RUN_THRESHOLD)
        _applied = (young, saved[1], saved[2])
        gc.set_threshold(*_applied)
        _freezing = gc.get_freeze_count() == 0
        if _freezing:
            gc.callbacks.append(_after_collection)


def run_ended() -> None:
    """A run ended (whatever its state); unbalanced calls are ignored."""
    global _going, _freezing
    with _lock:
        if _going == 0:
            return
        _going -= 1
        if _freezing:
            gc.unfreeze()  # the run's records, garbage now, are collected as usual again
        if _going:
            return
        if _applied is not None and _saved is not None and gc.get_threshold() == _applied:
            gc.set_threshold(*_saved)
        if _freezing:
            _freezing = False
            if _after_collection in gc.callbacks:
                gc.callbacks.remove(_after_collection)


def runs_going() -> int:
    return _going


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    # Right after a full collection the young generations are empty: everything tracked was
    # just found reachable, so freezing keeps no garbage.
    if phase == "stop" and info["generation"] == 2 and _freezing:
        gc.freeze()


__all__ = ["RUN_THRESHOLD", "run_ended", "run_started", "runs_going"]
