"""Which failed Dask keys are labloom's to record, marked as their task raises: the state a
worker's log filter reads (``dask_worker_failures``) and the function each Dask task of a task
run calls (``invoke_task``). Free of distributed, so ``dask_entries`` imports it at its top
and ``import labloom`` still pulls in no distributed; the plugin that installs the filter
(``dask_worker_failures``) hands over how to find the worker running a task.

Why a key and a worker: distributed's worker logs "Compute Failed" for a task that raised, in
the worker's process. On a cluster labloom starts whose workers run in the run's own process
(``processes=False``), that process's ``distributed.worker`` logger is also the one a user's
own in-process cluster logs to, so a record is dropped only for a key marked while a worker of
labloom's own cluster ran it, and only while such a worker is open.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ..core import attempt
from . import dask_events as events

# The logger distributed's worker says "Compute Failed" on.
LOGGER = "distributed.worker"
# Keys marked and not yet seen in a record (one whose record never comes, a task cancelled as
# it failed, stays): bounded so a long-lived worker does not accumulate them.
_KEEP = 10_000


class Recorded:
    """This process's open workers of labloom's own clusters, and the keys whose failure on one
    of them labloom records, while they are open."""

    def __init__(self) -> None:
        self.workers: weakref.WeakSet[Any] = weakref.WeakSet()
        # The worker running the calling task (distributed.get_worker), set by the plugin.
        self.running: Callable[[], Any] | None = None
        self.keys: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.lock = threading.Lock()

    def opened(self, worker: Any, running: Callable[[], Any]) -> None:
        """``worker`` (labloom's own) is set up: its failures are marked, its records read."""
        with self.lock:
            self.running = running
            first = not self.workers
            self.workers.add(worker)
        if first:
            logging.getLogger(LOGGER).addFilter(self.filter)

    def closed(self, worker: Any) -> None:
        """``worker`` closed: with the last of them, the logger is left as it was."""
        with self.lock:
            self.workers.discard(worker)
            last = not self.workers
            if last:
                self.keys.clear()
        if last:
            logging.getLogger(LOGGER).removeFilter(self.filter)

    def mark_failed(self) -> None:
        """The calling task raised: its key marked if a worker of labloom's own runs it."""
        if not self.workers or self.running is None:
            return
        try:
            worker = self.running()
        except ValueError:  # not on a worker (called directly)
            return
        if worker in self.workers:
            key = str(worker.get_current_task())
            with self.lock:
                self.keys[key] = None
                while len(self.keys) > _KEEP:
                    self.keys.popitem(last=False)

    def taken(self, key: Any) -> bool:
        with self.lock:
            return self.keys.pop(str(key), 0) is None

    def filter(self, record: logging.LogRecord) -> bool:
        """False only for "Compute Failed" of a key marked here (its first argument)."""
        if not (isinstance(record.msg, str) and record.msg.startswith("Compute Failed")):
            return True
        args = record.args
        return not (isinstance(args, tuple) and args and self.taken(args[0]))


recorded = Recorded()


def invoke_task(call: attempt.TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The Dask task of one attempt of one task run (``dask_events.invoke``), its failure marked
    as labloom's to record before distributed's worker logs it."""
    try:
        return events.invoke(call, args, kwargs)
    except BaseException:
        recorded.mark_failed()
        raise
