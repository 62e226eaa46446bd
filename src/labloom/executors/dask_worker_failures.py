"""A worker process of labloom's own LocalCluster does not log a failed labloom task again.

When a task raises, distributed's worker logs "Compute Failed" with the key, the task and its
traceback (``distributed.worker``, level ERROR) in the worker process, whose stderr is the
terminal's: `labloom run` of the README's sweep printed that block for every failed experiment
attempt, beside labloom's own record of the same failure (the task run's state and traceback,
`labloom logs`, the progress line). Said twice, the second time out of labloom's format.

So on clusters labloom starts (never a user's own Client or cluster), a worker plugin filters
``distributed.worker``'s records in each worker process: a "Compute Failed" record is dropped
only for a key whose failure ``invoke_task`` has just marked as labloom's (it raised out of a
labloom task run, which labloom records). Every other record of the worker, error or warning,
goes on as it was, a record a task itself logs to that logger included.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..core import attempt
from . import dask_events as events

# The logger distributed's worker says "Compute Failed" on.
_LOGGER = "distributed.worker"
# Keys marked and not yet seen in a record (one whose record never comes, a task cancelled as
# it failed, stays): bounded so a long-lived worker does not accumulate them.
_KEEP = 10_000


class _Recorded:
    """This process's keys whose failure labloom records, while its filter is installed."""

    def __init__(self) -> None:
        self.on = False
        self.keys: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.lock = threading.Lock()

    def mark(self, key: Any) -> None:
        with self.lock:
            self.keys[str(key)] = None
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


_recorded = _Recorded()


def invoke_task(call: attempt.TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The Dask task of one attempt of one task run (``dask_events.invoke``), its failure marked
    as labloom's to record before distributed's worker logs it."""
    try:
        return events.invoke(call, args, kwargs)
    except BaseException:
        if _recorded.on:
            from distributed import get_worker

            _recorded.mark(get_worker().get_current_task())
        raise


class QuietRecordedFailures(WorkerPlugin):
    """Registered on labloom's own LocalClusters (the embedded one, a run's): see above."""

    name = "labloom-quiet-recorded-failures"
    idempotent = True

    def setup(self, worker: Any) -> None:
        # Only a worker process of its own: an in-process worker's logger is the caller's.
        if multiprocessing.parent_process() is None or _recorded.on:
            return
        _recorded.on = True
        logging.getLogger(_LOGGER).addFilter(_recorded.filter)
