"""A worker of labloom's own cluster does not log a failed labloom task again.

When a task raises, distributed's worker logs "Compute Failed" with the key, the task and its
traceback (``distributed.worker``, level ERROR) in the worker's process, whose stderr is the
terminal's: `labloom run` of the README's sweep printed that block for every failed experiment
attempt, beside labloom's own record of the same failure (the task run's state and traceback,
`labloom logs`, the progress line). Said twice, the second time out of labloom's format.

So on clusters labloom starts (never a user's own Client or cluster), a worker plugin filters
``distributed.worker``'s records while the worker is open: a "Compute Failed" record is dropped
only for a key whose failure ``dask_failure_marks.invoke_task`` has just marked as labloom's
(it raised out of a labloom task run on that worker, which labloom records). Every other
record of the worker, error or warning, goes on as it was, a record a task itself logs to that
logger included. A worker in a process of its own and one in the run's process
(``processes=False``, whose logger is the user's process's) alike; the marks and the filter
live in ``dask_failure_marks``, which imports no distributed.
"""

from __future__ import annotations

from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from .dask_failure_marks import recorded


class QuietRecordedFailures(WorkerPlugin):
    """Registered on labloom's own LocalClusters (the embedded one, a run's): see above."""

    name = "labloom-quiet-recorded-failures"
    idempotent = True

    def setup(self, worker: Any) -> None:
        recorded.opened(worker, get_worker)

    def teardown(self, worker: Any) -> None:
        recorded.closed(worker)
