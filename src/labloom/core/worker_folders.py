"""Whether what Dask workers write to the result folder is there for this process to read.

A result folder named by a local path (``LABLOOM_RESULTS_URL=/scratch/labloom``, or the
default ``LABLOOM_HOME/results``) is the same path on every host, not the same disk: workers on
other hosts wrote each result to their own, this process looked in its own, and every cache
lookup here missed, the cached tasks computing again at each run with nothing said. So the
first result each worker writes in a run is looked for here (one stat per worker and run,
under the run's lock: local paths only, a URL names one store for every host), and the first
one missing is said, once per run, in that task run's logs and on the process's log.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from .result_files import is_url, local_path

if TYPE_CHECKING:
    from .task_runs import TaskRun


class WorkerFolders:
    """One run's look at where its Dask workers' results went."""

    def __init__(self) -> None:
        self._seen: set[str] = set()  # worker addresses whose first result was looked for
        self._said = False

    def written(self, tr: TaskRun, path_of: Callable[[], str]) -> str | None:
        """The warning to give when ``tr``'s result, written at ``path_of()`` by the Dask
        worker it ran on (``tr.worker``: its address and thread), is not there for this
        process. (The path is made only for a worker not seen yet: a map's 10,000 children
        cost a set look-up each.)"""
        if self._said:
            return None
        address = tr.worker.split(" ", 1)[0]
        if address in self._seen:
            return None
        self._seen.add(address)
        path = path_of()
        if is_url(path) or os.path.exists(local_path(path)):
            return None
        self._said = True
        folder = os.path.dirname(os.path.dirname(local_path(path)))
        return (
            f"the Dask worker {address} wrote this result to {path}, but the folder {folder} "
            f"holds no such file here on host {socket.gethostname()} (or the worker could not "
            "write it: see above): that folder is not the same disk for the workers and for "
            "this process, so cache lookups here miss and cached tasks compute again at every "
            "run. Set LABLOOM_RESULTS_URL, for this process and the workers alike, to a folder "
            "every host reaches (a shared mount, or a URL such as s3://bucket/labloom)"
        )
