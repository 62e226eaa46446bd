"""The embedded LocalCluster's worker processes ignore SIGINT.

They are the kernel's children, in its process group, and JupyterLab's Interrupt button (like a
terminal's Ctrl-C) sends SIGINT to the whole group: each worker process died of it
(dask/distributed#1925), and every later Dask cell of the kernel hung on a cluster without
workers. The interrupt is meant for the kernel, whose KeyboardInterrupt cancels the run.

A worker closed while it runs a task (the run was interrupted, a cluster per run closes as its
cancelled run ends) says, once per task, "Async instruction for <Task cancelled
name="execute('...')" ...> ended with CancelledError": a warning that distributed gives only
for a close (its own comment says so), two long lines after a Ctrl-C that had said what
happened. On these workers, labloom's own, it is not printed.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class IgnoreInterrupts(WorkerPlugin):
    """Registered once on the embedded cluster; the scheduler gives it to restarted workers."""

    name = "labloom-ignore-interrupts"
    idempotent = True

    def setup(self, worker: Any) -> None:
        # Only a worker process of its own, on its main thread (the only one that may set a
        # handler): an in-process worker (processes=False) runs in a thread of the kernel, whose
        # own Ctrl-C must keep working.
        own_process = multiprocessing.parent_process() is not None
        if own_process and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if own_process:  # (an in-process worker's logger is the kernel's: left as it is)
            logging.getLogger("distributed.worker.state_machine").addFilter(_cancelled_by_close)


def _cancelled_by_close(record: logging.LogRecord) -> bool:
    """False for the warning of a task's execution cancelled as its worker closes."""
    text = record.getMessage()
    return not (text.startswith("Async instruction for")
                and text.endswith("ended with CancelledError"))


def ignore_interrupts(client: Any) -> None:
    """Make the worker processes of ``client``'s (embedded) cluster ignore SIGINT."""
    client.register_plugin(IgnoreInterrupts(), name=IgnoreInterrupts.name)
