"""Child processes a start abandoned by an interrupt leaves behind, ended at a hard exit.

A Ctrl-C while `labloom run` starts a Dask LocalCluster (its worker processes take seconds to
import) cancels the run and leaves the start to finish in its thread, which would close the
cluster once it is up (``executors/dask_worker_signals.start_deaf_to_interrupts``). But the
command ends first, with ``os._exit``, after letting go of multiprocessing's semaphores
(``process_internals.release_before_hard_exit``), and each worker still reading its start-up
data from the command then failed on a semaphore already gone: a ``FileNotFoundError``
traceback per worker under "labloom: interrupted". Those workers run nothing and nobody will
use them: the hard exit kills them first (SIGKILL says nothing), then once more after the
semaphores went, for one forked meanwhile.

Which processes: this process's children born after the start began, known from /proc's
per-thread lists of children (Linux), which hold a child from its fork, before multiprocessing
registers it; elsewhere multiprocessing's own list of the children it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path


def children() -> frozenset[int]:
    """The pids of this process's child processes now."""
    tasks = Path("/proc/self/task")
    if tasks.is_dir():
        found: set[int] = set()
        for task in tasks.iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                found.update(int(pid) for pid in (task / "children").read_text().split())
        return frozenset(found)
    if "multiprocessing" not in sys.modules:  # then it started none
        return frozenset()
    import multiprocessing

    return frozenset(p.pid for p in multiprocessing.active_children() if p.pid is not None)


class ChildStart:
    """A start of child processes (a cluster's workers) that an interrupt may abandon."""

    def __init__(self) -> None:
        self._before: frozenset[int] | None = None

    def begin(self) -> None:
        """Called by the starting thread just before it starts children: those there now
        (multiprocessing's resource tracker, started first) are not this start's."""
        self._before = children()

    def abandon(self) -> None:
        """Nobody waits for this start any more: a hard exit ends what it started."""
        with _lock:
            _abandoned.append(self)

    def closed(self) -> None:
        """What the abandoned start started was closed as usual: nothing left to end."""
        with _lock:
            if self in _abandoned:
                _abandoned.remove(self)

    def born_since(self) -> frozenset[int]:
        # Not begun: it has started nothing yet.
        return frozenset() if self._before is None else children() - self._before


_lock = threading.Lock()
_abandoned: list[ChildStart] = []
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


def end_abandoned() -> int:
    """Kill the children of every abandoned start, before a hard exit; returns how many."""
    with _lock:
        starts = list(_abandoned)
    killed = 0
    for start in starts:
        for pid in start.born_since():
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, _KILL)
                killed += 1
    return killed
