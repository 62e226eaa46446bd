"""The LocalClusters labloom started in this process, told that the process is stopping.

A SIGTERM often reaches a process's whole group, the worker processes of its LocalClusters
with it: `labloom serve` stops a run that way (its timeout, its own stop), and so do a service
manager and ``kill -TERM -PGID``. The workers died at once, but their nannies and the scheduler
live in this process: the nannies started new workers, and the scheduler ran on them every
finished task whose result the run still held, which the run's end then waited for (a task
that appends a line to a file appended it again, 3 of 3 times; session 56).

``stop_restarts`` marks each nanny as closing (``Nanny.close_gracefully``, distributed's own
signal that a worker that goes away is not to be restarted): a worker that dies is not replaced,
and with no worker the scheduler runs nothing again. ``stopping()`` then tells the run's end not
to wait for values lost with their workers: none will be made again.
"""

from __future__ import annotations

import weakref
from typing import Any

_own: weakref.WeakSet[Any] = weakref.WeakSet()
_stopping = False
REASON = "labloom: the process is stopping"


def own_cluster(cluster: Any) -> None:
    """``cluster`` (a LocalCluster labloom started) stops with the process."""
    _own.add(cluster)


def stop_restarts() -> None:
    """No nanny of labloom's LocalClusters starts a new worker from now on. Called from a
    signal handler: it only sets each nanny's status (what ``close_gracefully`` does)."""
    global _stopping
    _stopping = True
    for cluster in list(_own):
        for nanny in list(getattr(cluster, "workers", {}).values()):
            close_gracefully = getattr(nanny, "close_gracefully", None)  # not a thread worker
            if callable(close_gracefully):
                close_gracefully(REASON)


def stopping() -> bool:
    """Whether the process was told to stop (then values lost with a worker stay lost)."""
    return _stopping
